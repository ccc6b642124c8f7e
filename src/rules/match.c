/* match.c: the loop thread's look-ups by name (at start-up and on a
 * terminal's poll, never per event). Matching itself is in index.c. */
#include "rules/rules.h"

int ld_rules_department(const ld_rules *r, const char *id)
{
    const ld_department *d = ld_map_get(&r->dept_by_id, id);
    return d ? (int)(d - r->departments) : -1;
}

int ld_rules_terminal(const ld_rules *r, const char *id)
{
    const ld_terminal_def *t = ld_map_get(&r->term_by_id, id);
    return t ? (int)(t - r->terminals) : -1;
}
