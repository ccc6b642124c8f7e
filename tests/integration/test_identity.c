/* test_identity.c: terminals prove who they are. The rules list Ed25519
 * public keys for fire-duty and police-duty (made by `linkctl keygen`). A
 * poll as fire-duty without a hello, with a hello signed by another key,
 * with a replayed hello or with a stale one is refused (hello_required, a
 * reason, a counter); a valid hello binds the connection, and only that
 * connection is served as fire-duty; `linkctl terminal --key` does all of
 * this by itself. A key for a terminal no department has is a rule error. */
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "dispatch/auth.h"
#include "harness.h"

#define REPLY_MS 8000

static char dir[128], rules[160];
static ldh_env env;
static uint8_t fire_sk[64], police_sk[64];

static const char *path(const char *name)
{
    static char buf[4][192];
    static int i;
    char *p = buf[i++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

/* keygen runs `linkctl keygen` for <id>, appends its line to <keys> and loads
 * the secret key like a terminal would. */
static void keygen(const char *id, char *keys, size_t len, uint8_t sk[64])
{
    char keyfile[192], out[192];
    snprintf(keyfile, sizeof keyfile, "%s/%s.key", dir, id);
    snprintf(out, sizeof out, "%s/%s.pub", dir, id);
    char *argv[] = {LD_BINARY_DIR "/linkctl", "keygen", "--terminal", (char *)id, "--out", keyfile,
                    NULL};
    cr_assert_eq(ldh_run(argv, NULL, out, NULL, 20000), 0, "linkctl keygen failed");
    char *line = ldh_read_file(out, NULL);
    cr_assert(line && strstr(line, ": ed25519:"), "keygen printed no rules line");
    strncat(keys, line, len - strlen(keys) - 1);
    free(line);
    char *secret = ldh_read_file(keyfile, NULL);
    cr_assert_not_null(secret);
    size_t n = 0;
    const char *b64 = strchr(secret, ':') + 1;
    cr_assert_eq(sodium_base642bin(sk, 64, b64, strcspn(b64, "\n"), NULL, &n, NULL,
                                   sodium_base64_VARIANT_ORIGINAL), 0);
    cr_assert_eq(n, 64);
    free(secret);
}

static void setup(void)
{
    cr_assert_geq(sodium_init(), 0);
    cr_assert_eq(ldh_mkdtemp(dir, sizeof dir, "identity"), 0);
    snprintf(rules, sizeof rules, "%s/rules", dir);
    char *cp[] = {"cp", "-r", LDH_DEFAULT_RULES, rules, NULL};
    cr_assert_eq(ldh_run(cp, NULL, NULL, NULL, 20000), 0);
    char keys[1024] = "terminal_keys:\n";
    keygen("fire-duty", keys, sizeof keys, fire_sk);
    keygen("police-duty", keys, sizeof keys, police_sk);
    char kf[200];
    snprintf(kf, sizeof kf, "%s/keys.yaml", rules);
    cr_assert_eq(ldh_write_file(kf, keys, strlen(keys)), 0);
    ldh_linkd_opts o = {.rules = rules};
    ldh_env_start_or_fail(&env, &o);
}

static void teardown(void)
{
    ldh_env_stop(&env);
    ldh_rmtree(dir);
}

/* sign_as signs a hello of kind <tag> for <id> with <sk>, <age_ms> old, into
 * static buffers, and returns its time. */
static uint8_t nonce[16], sig[64];
static int64_t sign_as(const char *tag, const char *id, const uint8_t *sk, int64_t age_ms)
{
    uint8_t msg[128];
    randombytes_buf(nonce, sizeof nonce);
    int64_t ts = (int64_t)ld_wall_ms() - age_ms;
    crypto_sign_detached(sig, NULL, msg, ld_auth_message(msg, tag, id, ts, nonce), sk);
    return ts;
}

/* A terminal's hello for <id> signed with <sk>, <age_ms> old. */
static Linkd__V1__TerminalHello *hello(const char *id, const uint8_t *sk, int64_t age_ms)
{
    static Linkd__V1__TerminalHello h;
    linkd__v1__terminal_hello__init(&h);
    h.terminal_id = (char *)id;
    h.has_timestamp_ms = h.has_nonce = h.has_signature = 1;
    h.timestamp_ms = sign_as(LD_HELLO_TERMINAL, id, sk, age_ms);
    h.nonce = (ProtobufCBinaryData){16, nonce};
    h.signature = (ProtobufCBinaryData){64, sig};
    return &h;
}

static nng_socket connect_terminals(void)
{
    nng_socket s;
    cr_assert_eq(nng_req0_open(&s), 0);
    nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, REPLY_MS);
    nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    cr_assert_eq(nng_dial(s, env.linkd.terminals, NULL, 0), 0);
    return s;
}

/* poll sends one PollRequest as <id> on <s>; the reply (caller frees) or NULL. */
static Linkd__V1__PollReply *poll_as(nng_socket s, const char *id, Linkd__V1__TerminalHello *h,
                                     uint32_t wait_ms)
{
    Linkd__V1__PollRequest req = LINKD__V1__POLL_REQUEST__INIT;
    req.terminal_id = (char *)id;
    req.hello = h;
    req.has_wait_ms = 1;
    req.wait_ms = wait_ms;
    size_t len = linkd__v1__poll_request__get_packed_size(&req);
    uint8_t *buf = malloc(len);
    linkd__v1__poll_request__pack(&req, buf);
    int rv = nng_send(s, buf, len, 0);
    free(buf);
    if (rv != 0) return NULL;
    void *rep;
    size_t rlen;
    if (nng_recv(s, &rep, &rlen, NNG_FLAG_ALLOC) != 0) return NULL;
    Linkd__V1__PollReply *r = linkd__v1__poll_reply__unpack(NULL, rlen, rep);
    nng_free(rep, rlen);
    return r;
}

/* refused expects a refusal that asks for a hello and says <why>. */
static void refused(Linkd__V1__PollReply *r, const char *why)
{
    ldh_check(&env, r != NULL, "no reply");
    ldh_check(&env, r->error && strstr(r->error, why), "expected a refusal with '%s', got '%s'",
              why, r->error ? r->error : "(no error)");
    ldh_check(&env, r->has_hello_required && r->hello_required, "hello_required not set");
    ldh_check(&env, r->n_tasks == 0, "a refused poll carried tasks");
    linkd__v1__poll_reply__free_unpacked(r, NULL);
}

static void served(Linkd__V1__PollReply *r)
{
    ldh_check(&env, r != NULL, "no reply");
    ldh_check(&env, !r->error || !*r->error, "refused: %s", r->error);
    linkd__v1__poll_reply__free_unpacked(r, NULL);
}

Test(identity, polls_without_a_valid_hello_are_refused, .init = setup, .fini = teardown,
     .timeout = 120)
{
    nng_socket s = connect_terminals();
    refused(poll_as(s, "fire-duty", NULL, 0), "must send a signed hello");
    refused(poll_as(s, "fire-duty", hello("fire-duty", police_sk, 0), 0),
            "signature does not match");
    refused(poll_as(s, "police-duty", hello("fire-duty", fire_sk, 0), 0),
            "names another id");
    refused(poll_as(s, "fire-duty", hello("fire-duty", fire_sk, 10 * 60 * 1000), 0),
            "more than 60 s");
    /* still nothing served on this connection */
    refused(poll_as(s, "fire-duty", NULL, 0), "must send a signed hello");
    ldh_nng_close(s, "test socket");
    /* a terminal without a key in the rules is served as before */
    s = connect_terminals();
    served(poll_as(s, "medical-duty", NULL, 0));
    ldh_nng_close(s, "test socket");
    ldh_check(&env, ldh_linkd_log_wait(&env.linkd, "TERMINAL-AUTH", 5000),
              "refusals are not logged");
}

Test(identity, a_valid_hello_binds_its_connection_and_tasks_flow, .init = setup,
     .fini = teardown, .timeout = 120)
{
    nng_socket s = connect_terminals();
    served(poll_as(s, "fire-duty", hello("fire-duty", fire_sk, 0), 0));
    ldh_event ev;
    ldh_event_call(&ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
    char inc[64];
    ldh_check(&env, ldh_ingest_accept(&env.linkd, &ev, inc, sizeof inc) ==
                        LINKD__V1__RESULT__RESULT_ACCEPTED, "the fire call was not accepted");
    /* the same connection, no hello: served, with the task */
    Linkd__V1__PollReply *r = NULL;
    uint64_t end = ldh_mono_ms() + 20000;
    int got = 0;
    while (!got && ldh_mono_ms() < end) {
        r = poll_as(s, "fire-duty", NULL, 2000);
        ldh_check(&env, r && (!r->error || !*r->error), "bound connection refused: %s",
                  r && r->error ? r->error : "no reply");
        for (size_t i = 0; i < r->n_tasks; i++) got |= strcmp(r->tasks[i]->incident_id, inc) == 0;
        linkd__v1__poll_reply__free_unpacked(r, NULL);
    }
    ldh_check(&env, got, "fire-duty never got the task of %s", inc);
    /* another connection is not bound */
    nng_socket other = connect_terminals();
    refused(poll_as(other, "fire-duty", NULL, 0), "must send a signed hello");
    ldh_nng_close(other, "test socket");
    ldh_nng_close(s, "test socket");
}

Test(identity, a_replayed_hello_is_refused, .init = setup, .fini = teardown, .timeout = 120)
{
    Linkd__V1__TerminalHello *h = hello("fire-duty", fire_sk, 0);
    nng_socket a = connect_terminals(), b = connect_terminals();
    served(poll_as(a, "fire-duty", h, 0));
    refused(poll_as(b, "fire-duty", h, 0), "replayed");
    ldh_nng_close(a, "test socket");
    ldh_nng_close(b, "test socket");
}

Test(identity, linkctl_terminal_with_its_key_gets_and_acknowledges_tasks, .init = setup,
     .fini = teardown, .timeout = 120)
{
    char out[192];
    snprintf(out, sizeof out, "%s/terminal.out", dir);
    char *argv[] = {LD_BINARY_DIR "/linkctl", "terminal", "--terminals", env.linkd.terminals,
                    "--id", "fire-duty", "--key", (char *)path("fire-duty.key"), "--auto-ack", "0",
                    "--duration", "8", NULL};
    pid_t pid = ldh_spawn(argv, "/dev/null", out, out);
    cr_assert_gt(pid, 0);
    ldh_sleep_ms(1500);
    ldh_event ev;
    ldh_event_call(&ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
    char inc[64];
    ldh_check(&env, ldh_ingest_accept(&env.linkd, &ev, inc, sizeof inc) ==
                        LINKD__V1__RESULT__RESULT_ACCEPTED, "the fire call was not accepted");
    int code = -1;
    ldh_wait_pid(pid, 30000, &code);
    char *said = ldh_read_file(out, NULL);
    ldh_check(&env, said && strstr(said, inc), "linkctl terminal --key never showed %s:\n%s", inc,
              said ? said : "");
    ldh_check(&env, !strstr(said, "refused"), "linkctl terminal was refused:\n%s", said);
    free(said);
}

Test(identity, a_key_for_an_unknown_terminal_is_a_rule_error, .timeout = 60)
{
    cr_assert_eq(ldh_mkdtemp(dir, sizeof dir, "identity-check"), 0);
    snprintf(rules, sizeof rules, "%s/rules", dir);
    char *cp[] = {"cp", "-r", LDH_DEFAULT_RULES, rules, NULL};
    cr_assert_eq(ldh_run(cp, NULL, NULL, NULL, 20000), 0);
    const char *bad = "terminal_keys:\n"
                      "  fire-dutty: ed25519:Uq53W+AboGsK2B5DwinFxgj+kg681uVIteynN1bYsXA=\n"
                      "  police-duty: ed25519:not-base64\n";
    char kf[200], out[200];
    snprintf(kf, sizeof kf, "%s/keys.yaml", rules);
    snprintf(out, sizeof out, "%s/check.out", dir);
    cr_assert_eq(ldh_write_file(kf, bad, strlen(bad)), 0);
    char *argv[] = {LDH_LINKD_BIN, "--check", "--rules", rules, NULL};
    cr_expect_eq(ldh_run(argv, NULL, out, out, 20000), 65);
    char *said = ldh_read_file(out, NULL);
    cr_expect(said && strstr(said, "keys.yaml:2:3: error: key for terminal 'fire-dutty', which no "
                             "department has; did you mean 'fire-duty'?"), "%s", said);
    cr_expect(said && strstr(said, "keys.yaml:3:16: error: key of terminal 'police-duty' is not 32 "
                             "bytes of base64"), "%s", said);
    free(said);
    ldh_rmtree(dir);
}

/* ---- producers (source_keys) ------------------------------------------------ */

static uint8_t source_sk[64];

static void source_setup(void)
{
    cr_assert_geq(sodium_init(), 0);
    cr_assert_eq(ldh_mkdtemp(dir, sizeof dir, "identity-src"), 0);
    snprintf(rules, sizeof rules, "%s/rules", dir);
    char *cp[] = {"cp", "-r", LDH_DEFAULT_RULES, rules, NULL};
    cr_assert_eq(ldh_run(cp, NULL, NULL, NULL, 20000), 0);
    char keys[1024] = "source_keys:\n";
    keygen("cad-haizhu", keys, sizeof keys, source_sk);
    char kf[200];
    snprintf(kf, sizeof kf, "%s/keys.yaml", rules);
    cr_assert_eq(ldh_write_file(kf, keys, strlen(keys)), 0);
    ldh_linkd_opts o = {.rules = rules};
    ldh_env_start_or_fail(&env, &o);
}

/* A source's hello for <id> signed with <sk>, now. */
static Linkd__V1__SourceHello *source_hello(const char *id, const uint8_t *sk)
{
    static Linkd__V1__SourceHello h;
    linkd__v1__source_hello__init(&h);
    h.source_id = (char *)id;
    h.has_timestamp_ms = h.has_nonce = h.has_signature = 1;
    h.timestamp_ms = sign_as(LD_HELLO_SOURCE, id, sk, 0);
    h.nonce = (ProtobufCBinaryData){16, nonce};
    h.signature = (ProtobufCBinaryData){64, sig};
    return &h;
}

static nng_socket connect_intake(void)
{
    nng_socket s;
    cr_assert_eq(nng_req0_open(&s), 0);
    nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, REPLY_MS);
    nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    cr_assert_eq(nng_dial(s, env.linkd.ingest, NULL, 0), 0);
    return s;
}

/* send_from sends one fire call from <source> on <s> with <h>; the reply. */
static Linkd__V1__IngestReply *send_from(nng_socket s, const char *source,
                                         Linkd__V1__SourceHello *h)
{
    ldh_event ev;
    ldh_event_call(&ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
    ev.env.source_id = (char *)source;
    Linkd__V1__Envelope *evs[] = {&ev.env};
    Linkd__V1__IngestRequest req = LINKD__V1__INGEST_REQUEST__INIT;
    req.n_events = 1;
    req.events = evs;
    req.hello = h;
    size_t len = linkd__v1__ingest_request__get_packed_size(&req);
    uint8_t *buf = malloc(len);
    linkd__v1__ingest_request__pack(&req, buf);
    int rv = nng_send(s, buf, len, 0);
    free(buf);
    if (rv != 0) return NULL;
    void *rep;
    size_t rlen;
    if (nng_recv(s, &rep, &rlen, NNG_FLAG_ALLOC) != 0) return NULL;
    Linkd__V1__IngestReply *r = linkd__v1__ingest_reply__unpack(NULL, rlen, rep);
    nng_free(rep, rlen);
    return r;
}

static void expect_result(Linkd__V1__IngestReply *r, int result, const char *why, int hello)
{
    ldh_check(&env, r && r->n_results == 1, "no reply");
    ldh_check(&env, (int)r->results[0]->result == result, "result %d, expected %d (%s)",
              (int)r->results[0]->result, result, r->results[0]->reason ? r->results[0]->reason : "");
    if (why)
        ldh_check(&env, r->results[0]->reason && strstr(r->results[0]->reason, why),
                  "reason '%s' lacks '%s'", r->results[0]->reason, why);
    ldh_check(&env, (r->has_hello_required && r->hello_required) == hello,
              "hello_required is %d", (int)r->hello_required);
    linkd__v1__ingest_reply__free_unpacked(r, NULL);
}

Test(identity, a_keyed_source_is_accepted_only_on_a_connection_it_proved,
     .init = source_setup, .fini = teardown, .timeout = 120)
{
    nng_socket a = connect_intake();
    expect_result(send_from(a, "cad-haizhu", NULL), LINKD__V1__RESULT__RESULT_REJECTED,
                  "must send a signed hello", 1);
    expect_result(send_from(a, "cad-haizhu", source_hello("cad-haizhu", fire_sk)),
                  LINKD__V1__RESULT__RESULT_REJECTED, "signature does not match", 1);
    Linkd__V1__SourceHello *h = source_hello("cad-haizhu", source_sk);
    expect_result(send_from(a, "cad-haizhu", h), LINKD__V1__RESULT__RESULT_ACCEPTED, NULL, 0);
    expect_result(send_from(a, "cad-haizhu", NULL), LINKD__V1__RESULT__RESULT_ACCEPTED, NULL, 0);
    /* another connection, and a replay of the hello on it */
    nng_socket b = connect_intake();
    expect_result(send_from(b, "cad-haizhu", NULL), LINKD__V1__RESULT__RESULT_REJECTED,
                  "must send a signed hello", 1);
    expect_result(send_from(b, "cad-haizhu", h), LINKD__V1__RESULT__RESULT_REJECTED, "replayed", 1);
    /* a source without a key is served as before */
    expect_result(send_from(b, "cad-other", NULL), LINKD__V1__RESULT__RESULT_ACCEPTED, NULL, 0);
    ldh_nng_close(a, "test socket");
    ldh_nng_close(b, "test socket");
    ldh_check(&env, ldh_redis_int(&env.redis, "XLEN ld:events") == 3,
              "only the three accepted events are in the stream");

    /* linkctl send --key does the same */
    char out[192];
    snprintf(out, sizeof out, "%s/send.out", dir);
    char *argv[] = {LD_BINARY_DIR "/linkctl", "send", "--ingest", env.linkd.ingest, "--source",
                    "cad-haizhu", "--key", (char *)path("cad-haizhu.key"), "--kind", "call",
                    "--category", "fire", NULL};
    int code = ldh_run(argv, NULL, out, out, 20000);
    char *said = ldh_read_file(out, NULL);
    ldh_check(&env, code == 0 && said && strstr(said, "ACCEPTED"), "linkctl send --key: exit %d:\n%s",
              code, said ? said : "");
    free(said);
}
