#include "core/intern.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    uint32_t refs;
    char s[];
} entry;

static entry *entry_of(const char *s)
{
    return (entry *)(void *)(s - offsetof(entry, s));
}

void ld_intern_init(ld_intern *in)
{
    ld_map_init(&in->map);
    in->bytes = 0;
}

void ld_intern_fini(ld_intern *in)
{
    const char *key;
    void *value;
    for (size_t it = 0; ld_map_next(&in->map, &it, &key, &value);) free(value);
    ld_map_fini(&in->map);
    in->bytes = 0;
}

const char *ld_intern_ref(ld_intern *in, const char *s, size_t max)
{
    size_t n = s ? strnlen(s, max) : 0;
    if (n == 0) return "";
    entry *e = ld_map_getn(&in->map, s, n);
    if (e) {
        e->refs++;
        return e->s;
    }
    if (!(e = malloc(sizeof *e + n + 1))) return NULL;
    e->refs = 1;
    memcpy(e->s, s, n);
    e->s[n] = '\0';
    if (ld_map_put(&in->map, e->s, e) != 0) {
        free(e);
        return NULL;
    }
    in->bytes += sizeof *e + n + 1;
    return e->s;
}

void ld_intern_unref(ld_intern *in, const char *s)
{
    if (!s || !*s) return;
    entry *e = entry_of(s);
    if (--e->refs > 0) return;
    ld_map_del(&in->map, e->s);
    in->bytes -= sizeof *e + strlen(e->s) + 1;
    free(e);
}

size_t ld_intern_count(const ld_intern *in)
{
    return ld_map_len(&in->map);
}
