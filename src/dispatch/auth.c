#include "dispatch/auth.h"

#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "core/err.h"
#include "wire/wire.h"

int ld_auth_init(ld_auth *a)
{
    memset(a, 0, sizeof *a);
    return sodium_init() < 0 ? LD_EIO : 0;
}

size_t ld_auth_message(uint8_t *buf, const char *tag, const char *id, int64_t ts_ms,
                       const uint8_t *nonce)
{
    size_t n = 0, tl = strlen(tag), il = strlen(id);
    memcpy(buf, tag, tl + 1); /* with its NUL */
    n += tl + 1;
    memcpy(buf + n, id, il + 1);
    n += il + 1;
    uint64_t t = (uint64_t)ts_ms;
    for (int i = 7; i >= 0; i--) buf[n++] = (uint8_t)(t >> (8 * i));
    memcpy(buf + n, nonce, LD_AUTH_NONCE);
    return n + LD_AUTH_NONCE;
}

static int seen(const ld_auth *a, const uint8_t *nonce)
{
    for (size_t i = 0; i < a->n; i++)
        if (memcmp(a->seen[(a->head + i) % LD_AUTH_SEEN].nonce, nonce, LD_AUTH_NONCE) == 0)
            return 1;
    return 0;
}

/* refuse writes "hello for <id>: <what>" into <why>. */
static int refuse(ld_auth *a, char *why, size_t len, const char *id, const char *what)
{
    a->refused++;
    snprintf(why, len, "hello for %s: %s", id, what);
    return LD_EPERM;
}

/* verify checks one hello: the named id, the fields, the clock, the
 * signature over <tag>'s bytes, then the nonce against the replay table. */
static int verify(ld_auth *a, const char *tag, const char *want, const uint8_t *pubkey,
                  const char *id, int has_ts, int64_t ts, const ProtobufCBinaryData *nonce,
                  const ProtobufCBinaryData *sig, int64_t now_ms, char *why, size_t len)
{
    if (!id || strcmp(id, want) != 0)
        return refuse(a, why, len, want, "the hello names another id");
    if (!has_ts || nonce->len != LD_AUTH_NONCE || sig->len != crypto_sign_BYTES)
        return refuse(a, why, len, want, "needs timestamp_ms, a 16-byte nonce and a 64-byte "
                      "signature");
    int64_t skew = ts - now_ms;
    if (skew > LD_AUTH_WINDOW_MS || skew < -LD_AUTH_WINDOW_MS)
        return refuse(a, why, len, want, "timestamp_ms is more than 60 s from linkd's clock "
                      "(check the clock there)");
    uint8_t msg[64 + LD_MAX_ID_LEN];
    if (strlen(want) > LD_MAX_ID_LEN) return refuse(a, why, len, want, "id too long");
    size_t n = ld_auth_message(msg, tag, want, ts, nonce->data);
    if (crypto_sign_verify_detached(sig->data, msg, n, pubkey) != 0)
        return refuse(a, why, len, want, "the signature does not match the key in the rules");
    /* Forget what is older than any hello could still be valid, then look. */
    while (a->n && now_ms - a->seen[a->head].at_ms > 2 * LD_AUTH_WINDOW_MS) {
        a->head = (a->head + 1) % LD_AUTH_SEEN;
        a->n--;
    }
    if (seen(a, nonce->data))
        return refuse(a, why, len, want, "replayed (this nonce was used already)");
    if (a->n == LD_AUTH_SEEN)
        return refuse(a, why, len, want, "too many hellos in the last two minutes; try again "
                      "shortly");
    struct ld_auth_seen *e = &a->seen[(a->head + a->n++) % LD_AUTH_SEEN];
    e->at_ms = now_ms;
    memcpy(e->nonce, nonce->data, LD_AUTH_NONCE);
    a->accepted++;
    return 0;
}

int ld_auth_check(ld_auth *a, const ld_terminal_def *t, const Linkd__V1__TerminalHello *h,
                  int64_t now_ms, char *why, size_t len)
{
    ProtobufCBinaryData none = {0, NULL};
    return verify(a, LD_HELLO_TERMINAL, t->id, t->pubkey, h->terminal_id, h->has_timestamp_ms,
                  h->timestamp_ms, h->has_nonce ? &h->nonce : &none,
                  h->has_signature ? &h->signature : &none, now_ms, why, len);
}

int ld_auth_check_source(ld_auth *a, const ld_source_key *k, const Linkd__V1__SourceHello *h,
                         int64_t now_ms, char *why, size_t len)
{
    ProtobufCBinaryData none = {0, NULL};
    return verify(a, LD_HELLO_SOURCE, k->id, k->pubkey, h->source_id, h->has_timestamp_ms,
                  h->timestamp_ms, h->has_nonce ? &h->nonce : &none,
                  h->has_signature ? &h->signature : &none, now_ms, why, len);
}
