/* intern.h: strings kept once, counted by reference.
 *
 * Many incidents share a few strings (a producer's source id, a district, a
 * grid, the rule a task was routed by): each holds a reference to the one
 * copy here instead of a buffer of its own. A string goes when its last
 * reference does, so strings that arrive in events cannot grow the table
 * past what open incidents hold. Not thread-safe. */
#ifndef LD_CORE_INTERN_H
#define LD_CORE_INTERN_H

#include <stddef.h>

#include "core/map.h"

typedef struct ld_intern {
    ld_map map;         /* string -> its entry */
    size_t bytes;       /* held by the entries */
} ld_intern;

void ld_intern_init(ld_intern *in);
/* ld_intern_fini frees every string, referenced or not. */
void ld_intern_fini(ld_intern *in);
/* ld_intern_ref returns the table's copy of the first <max> bytes of <s>
 * (to its NUL, if sooner) and takes a reference to it. NULL and "" give a
 * static "" (no reference). NULL when out of memory. */
const char *ld_intern_ref(ld_intern *in, const char *s, size_t max);
/* ld_intern_unref drops a reference taken by ld_intern_ref ("" is ignored). */
void ld_intern_unref(ld_intern *in, const char *s);
/* ld_intern_count is the number of distinct strings held. */
size_t ld_intern_count(const ld_intern *in);

#endif
