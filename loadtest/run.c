/* run.c: `linkload run` (being written). */
#include <stdio.h>

#include "linkload.h"

int lg_cmd_run(int argc, char **argv)
{
    (void)argc, (void)argv;
    fprintf(stderr, "linkload run: not implemented yet\n");
    return LG_EXIT_SOFTWARE;
}
