/* keys.c: terminal_keys and source_keys, the public keys terminals and
 * producers prove themselves with.
 *
 *   terminal_keys:
 *     fire-duty: ed25519:0B3q4...=     # linkctl keygen prints this line
 *   source_keys:
 *     cad-haizhu: ed25519:9xQ...=
 *
 * A terminal or source listed here must send a signed hello before linkd
 * serves it (src/dispatch/auth.c); one not listed is served as before. */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/err.h"
#include "core/map.h"
#include "rules/rules_int.h"

void rules__add_key(rules_loader *L, int source, const char *id, const char *value,
                    const rules_pos *key_at, const rules_pos *value_at)
{
    static const char prefix[] = "ed25519:";
    uint8_t key[crypto_sign_PUBLICKEYBYTES];
    size_t len = 0;
    if (strncmp(value, prefix, sizeof prefix - 1) != 0) {
        rules__error(L, value_at, "key of %s '%s' must be 'ed25519:<base64>' (linkctl "
                     "keygen prints it)", source ? "source" : "terminal", id);
        return;
    }
    const char *b64 = value + sizeof prefix - 1;
    if (sodium_base642bin(key, sizeof key, b64, strlen(b64), NULL, &len, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 || len != sizeof key) {
        rules__error(L, value_at, "key of %s '%s' is not %zu bytes of base64",
                     source ? "source" : "terminal", id, sizeof key);
        return;
    }
    if (strlen(id) >= sizeof L->keys->id) {
        rules__error(L, key_at, "%s id '%.48s...' is too long", source ? "source" : "terminal",
                     id);
        return;
    }
    if (rules__grow(L, (void **)&L->keys, sizeof *L->keys, L->nkeys, &L->cap_keys) != 0) return;
    rules_key_def *k = &L->keys[L->nkeys++];
    k->source = source;
    strcpy(k->id, id);
    memcpy(k->key, key, sizeof key);
    k->at = *key_at;
}

int rules__resolve_keys(rules_loader *L, ld_rules *r)
{
    int nsources = 0;
    for (int i = 0; i < L->nkeys; i++) nsources += L->keys[i].source;
    ld_map_init(&r->source_by_id);
    if (nsources && !(r->sources = calloc((size_t)nsources, sizeof *r->sources)))
        return LD_ENOMEM;
    for (int i = 0; i < L->nkeys; i++) {
        const rules_key_def *k = &L->keys[i];
        if (k->source) {
            if (ld_map_get(&r->source_by_id, k->id)) {
                rules__error(L, &k->at, "source '%s' has a key already", k->id);
                continue;
            }
            ld_source_key *s = &r->sources[r->nsources++];
            strcpy(s->id, k->id);
            memcpy(s->pubkey, k->key, sizeof s->pubkey);
            if (ld_map_put(&r->source_by_id, s->id, s) != 0) return LD_ENOMEM;
            continue;
        }
        ld_terminal_def *d = ld_map_get(&r->term_by_id, k->id);
        if (!d) {
            const char *cands[512];
            size_t n = 0;
            for (int j = 0; j < L->nterms && n < 512; j++) cands[n++] = L->terms[j].id;
            const char *near = rules__suggest(k->id, cands, n);
            rules__error(L, &k->at, "key for terminal '%s', which no department has%s%s%s",
                         k->id, near ? "; did you mean '" : "", near ? near : "",
                         near ? "'?" : "");
            continue;
        }
        if (d->has_key) {
            rules__error(L, &k->at, "terminal '%s' has a key already", k->id);
            continue;
        }
        memcpy(d->pubkey, k->key, sizeof d->pubkey);
        d->has_key = 1;
    }
    return 0;
}
