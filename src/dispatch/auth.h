/* auth.h: terminals proving who they are (signed hellos).
 *
 * A terminal with a key in the rules (terminal_keys) signs a hello: its id, its
 * wall-clock time and 16 random bytes, with Ed25519 (the exact bytes are in
 * proto/linkd/v1/linkd.proto, TerminalHello). linkd checks the signature
 * against the terminal's public key, that the time is within 60 s of its own
 * clock, and that it has not seen the nonce before; then it binds the
 * terminal to the connection (NNG pipe) the hello came on. Polls for that
 * terminal on any other connection are refused with hello_required.
 *
 * Replays: every nonce accepted in the last two minutes is remembered (only after its
 * signature checked out, so nobody without a key can fill the table); if more
 * than LD_AUTH_SEEN valid hellos arrive in two minutes the newest are refused
 * rather than an old nonce forgotten early. Loop thread only. */
#ifndef LD_DISPATCH_AUTH_H
#define LD_DISPATCH_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "linkd/v1/linkd.pb-c.h"
#include "rules/rules.h"

enum { LD_AUTH_SEEN = 4096, LD_AUTH_NONCE = 16 };
#define LD_AUTH_WINDOW_MS 60000

typedef struct ld_auth {
    struct ld_auth_seen {
        int64_t at_ms;                    /* linkd's wall clock when accepted */
        uint8_t nonce[LD_AUTH_NONCE];
    } seen[LD_AUTH_SEEN];
    size_t head, n;                       /* ring: oldest at head */
    uint64_t accepted, refused;
} ld_auth;

/* ld_auth_init prepares libsodium; returns 0 or LD_EIO. */
int ld_auth_init(ld_auth *a);

/* The two kinds of hello sign different bytes, so one can never pass for the other. */
#define LD_HELLO_TERMINAL "linkd-hello-v1"
#define LD_HELLO_SOURCE "linkd-source-hello-v1"

/* ld_auth_check verifies <h> for terminal <t> at wall time <now_ms>.
 * Returns 0, or LD_EPERM with a sentence for the terminal in <why>. */
int ld_auth_check(ld_auth *a, const ld_terminal_def *t, const Linkd__V1__TerminalHello *h,
                  int64_t now_ms, char *why, size_t len);
/* ld_auth_check_source does the same for a producer's SourceHello. */
int ld_auth_check_source(ld_auth *a, const ld_source_key *k, const Linkd__V1__SourceHello *h,
                         int64_t now_ms, char *why, size_t len);

/* ld_auth_message writes the signed bytes of a hello (<tag> is one of the
 * LD_HELLO_* above) into <buf> (at least 48 + strlen(id) bytes) and returns
 * their length. Clients use it too. */
size_t ld_auth_message(uint8_t *buf, const char *tag, const char *id, int64_t ts_ms,
                       const uint8_t *nonce);

#endif
