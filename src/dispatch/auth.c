#include "dispatch/auth.h"

#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "core/err.h"

int ld_auth_init(ld_auth *a)
{
    memset(a, 0, sizeof *a);
    return sodium_init() < 0 ? LD_EIO : 0;
}

size_t ld_auth_message(uint8_t *buf, const char *id, int64_t ts_ms, const uint8_t *nonce)
{
    static const char tag[] = "linkd-hello-v1";
    size_t n = 0, il = strlen(id);
    memcpy(buf, tag, sizeof tag); /* with its NUL */
    n += sizeof tag;
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

int ld_auth_check(ld_auth *a, const ld_terminal_def *t, const Linkd__V1__TerminalHello *h,
                  int64_t now_ms, char *why, size_t len)
{
    if (!h->terminal_id || strcmp(h->terminal_id, t->id) != 0)
        return refuse(a, why, len, t->id, "hello.terminal_id names another terminal");
    if (!h->has_timestamp_ms || !h->has_nonce || h->nonce.len != LD_AUTH_NONCE ||
        !h->has_signature || h->signature.len != crypto_sign_BYTES)
        return refuse(a, why, len, t->id, "needs timestamp_ms, a 16-byte nonce and a 64-byte "
                      "signature");
    int64_t skew = h->timestamp_ms - now_ms;
    if (skew > LD_AUTH_WINDOW_MS || skew < -LD_AUTH_WINDOW_MS)
        return refuse(a, why, len, t->id, "timestamp_ms is more than 60 s from linkd's clock "
                      "(check the terminal's time)");
    uint8_t msg[64 + 48];
    size_t n = ld_auth_message(msg, t->id, h->timestamp_ms, h->nonce.data);
    if (crypto_sign_verify_detached(h->signature.data, msg, n, t->pubkey) != 0)
        return refuse(a, why, len, t->id, "the signature does not match the terminal's key in "
                      "the rules");
    /* Forget what is older than the window, then look for this nonce. */
    while (a->n && now_ms - a->seen[a->head].at_ms > 2 * LD_AUTH_WINDOW_MS) {
        a->head = (a->head + 1) % LD_AUTH_SEEN;
        a->n--;
    }
    if (seen(a, h->nonce.data))
        return refuse(a, why, len, t->id, "replayed (this nonce was used already)");
    if (a->n == LD_AUTH_SEEN)
        return refuse(a, why, len, t->id, "too many hellos in the last two minutes; try again "
                      "shortly");
    struct ld_auth_seen *e = &a->seen[(a->head + a->n++) % LD_AUTH_SEEN];
    e->at_ms = now_ms;
    memcpy(e->nonce, h->nonce.data, LD_AUTH_NONCE);
    a->accepted++;
    return 0;
}
