/* test_tls.c: intake over TLS with client certificates, against a throwaway
 * CA made for the test. A producer with a certificate from the CA is served;
 * one with a certificate from another CA, or with none, is not, and linkd
 * keeps serving the good one. A key that does not match its certificate, a
 * tls+tcp endpoint without certificate flags and a plain listener beyond
 * loopback all stop linkd before it listens, with exit 78 and a reason. */
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <stdlib.h>
#include <string.h>

#include "core/tls.h"
#include "harness.h"

#define REPLY_MS 4000

static char dir[128];
static ldh_env env;

static const char *path(const char *name)
{
    static char buf[4][192];
    static int i;
    char *p = buf[i++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

static void make_certs(void)
{
    cr_assert_eq(ldh_mkdtemp(dir, sizeof dir, "tls"), 0);
    char script[256], out[192];
    snprintf(script, sizeof script, "%s/tests/data/tls/make-certs.sh", LD_SOURCE_DIR);
    snprintf(out, sizeof out, "%s/make-certs.out", dir);
    char *argv[] = {"bash", script, dir, NULL};
    cr_assert_eq(ldh_run(argv, NULL, out, out, 60000), 0, "cannot make the test PKI (openssl)");
}

static void setup(void)
{
    make_certs();
    ldh_linkd_opts o = {.ingest_scheme = "tls+tcp", .extra = {"--tls-cert", path("server.crt"), "--tls-key",
                                  path("server.key"), "--tls-ca", path("ca.crt"), NULL}};
    ldh_env_start_or_fail(&env, &o);
}

static void teardown(void)
{
    ldh_env_stop(&env);
    ldh_rmtree(dir);
}

/* send_call sends one fire call over TLS as the holder of <cert>/<key> (NULL:
 * no client certificate) and returns its result, or -1 if no reply came. */
static int send_call(const char *cert, const char *key)
{
    ldh_event ev;
    ldh_event_call(&ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
    Linkd__V1__Envelope *evs[] = {&ev.env};
    Linkd__V1__IngestRequest req = LINKD__V1__INGEST_REQUEST__INIT;
    req.n_events = 1;
    req.events = evs;
    size_t len = linkd__v1__ingest_request__get_packed_size(&req);
    uint8_t *buf = malloc(len);
    linkd__v1__ingest_request__pack(&req, buf);

    ld_tls_files f = {.cert = cert, .key = key, .ca = path("ca.crt"), .server_name = "localhost"};
    nng_socket s;
    int result = -1;
    cr_assert_eq(nng_req0_open(&s), 0);
    nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, REPLY_MS);
    nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, REPLY_MS);
    nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    if (ld_dial(s, env.linkd.ingest, &f, NNG_FLAG_NONBLOCK) == 0 && nng_send(s, buf, len, 0) == 0) {
        void *rep;
        size_t rlen;
        if (nng_recv(s, &rep, &rlen, NNG_FLAG_ALLOC) == 0) {
            Linkd__V1__IngestReply *r = linkd__v1__ingest_reply__unpack(NULL, rlen, rep);
            if (r && r->n_results == 1) result = (int)r->results[0]->result;
            if (r) linkd__v1__ingest_reply__free_unpacked(r, NULL);
            nng_free(rep, rlen);
        }
    }
    ldh_nng_close(s, "test socket");
    free(buf);
    return result;
}

Test(tls, a_producer_with_a_certificate_from_the_ca_is_served, .init = setup,
     .fini = teardown, .timeout = 90)
{
    ldh_check(&env, send_call(path("client.crt"), path("client.key")) ==
                        LINKD__V1__RESULT__RESULT_ACCEPTED,
              "a call over mutual TLS was not ACCEPTED");
}

Test(tls, a_producer_without_a_valid_certificate_is_refused, .init = setup, .fini = teardown,
     .timeout = 90)
{
    ldh_check(&env, send_call(path("rogue.crt"), path("rogue.key")) == -1,
              "a certificate from another CA was served");
    ldh_check(&env, send_call(NULL, NULL) == -1, "a producer without a certificate was served");
    ldh_check(&env, send_call(path("client.crt"), path("client.key")) ==
                        LINKD__V1__RESULT__RESULT_ACCEPTED,
              "linkd stopped serving good producers after refusing bad ones");
}

Test(tls, linkctl_sends_over_mutual_tls_from_its_environment, .init = setup, .fini = teardown,
     .timeout = 90)
{
    setenv("LINKCTL_TLS_CA", path("ca.crt"), 1);
    setenv("LINKCTL_TLS_CERT", path("client.crt"), 1);
    setenv("LINKCTL_TLS_KEY", path("client.key"), 1);
    setenv("LINKCTL_TLS_SERVER_NAME", "localhost", 1);
    char out[192];
    snprintf(out, sizeof out, "%s/send.out", dir);
    char *argv[] = {LD_BINARY_DIR "/linkctl", "send", "--ingest", env.linkd.ingest, "--kind", "call",
                    "--category", "fire", "--event-id", "tls-linkctl-1", NULL};
    int code = ldh_run(argv, NULL, out, out, 20000);
    char *said = ldh_read_file(out, NULL);
    ldh_check(&env, code == 0 && said && strstr(said, "ACCEPTED"),
              "linkctl send over TLS: exit %d:\n%s", code, said ? said : "");
    free(said);
}

/* refuses runs linkd with <extra> and expects exit 78 with <reason> on stderr. */
static void refuses(char *const extra[], const char *reason)
{
    char out[192];
    snprintf(out, sizeof out, "%s/linkd.out", dir);
    char *argv[16] = {LDH_LINKD_BIN, "--rules", LDH_DEFAULT_RULES, "--redis",
                      "redis://127.0.0.1:1/0"};
    int n = 5;
    for (int i = 0; extra[i] && n < 15; i++) argv[n++] = extra[i];
    argv[n] = NULL;
    int code = ldh_run(argv, NULL, out, out, 20000);
    char *said = ldh_read_file(out, NULL);
    cr_expect_eq(code, 78, "exit %d, not 78 (EX_CONFIG):\n%s", code, said ? said : "");
    cr_expect(said && strstr(said, reason), "no '%s' in:\n%s", reason, said ? said : "");
    free(said);
}

Test(tls, bad_certificates_and_plain_listeners_beyond_loopback_stop_linkd_at_start,
     .init = make_certs, .timeout = 90)
{
    char *mismatch[] = {"--ingest", "tls+tcp://127.0.0.1:1", "--tls-cert", (char *)path("server.crt"),
                        "--tls-key", (char *)path("other.key"), NULL};
    refuses(mismatch, "is not the key of the certificate");
    char *nocert[] = {"--ingest", "tls+tcp://127.0.0.1:1", NULL};
    refuses(nocert, "TLS needs both --tls-cert and --tls-key");
    char *missing[] = {"--ingest", "tls+tcp://127.0.0.1:1", "--tls-cert", (char *)path("nope.crt"),
                       "--tls-key", (char *)path("server.key"), NULL};
    refuses(missing, "nope.crt");
    /* refused before anything listens: no port is opened beyond loopback */
    char *wide[] = {"--ingest", "tcp://0.0.0.0:1", NULL};
    refuses(wide, "refusing to listen beyond loopback without TLS");
    char *http[] = {"--http", "0.0.0.0:1", NULL};
    refuses(http, "--http 0.0.0.0:1: refusing to serve HTTP beyond loopback");

    /* --check says the same about the files */
    char out[192];
    snprintf(out, sizeof out, "%s/check.out", dir);
    char *argv[] = {LDH_LINKD_BIN, "--check", "--rules", LDH_DEFAULT_RULES, "--tls-cert",
                    (char *)path("server.crt"), "--tls-key", (char *)path("other.key"), NULL};
    cr_expect_eq(ldh_run(argv, NULL, out, out, 20000), 78);
    char *argv2[] = {LDH_LINKD_BIN, "--check", "--rules", LDH_DEFAULT_RULES, "--tls-cert",
                     (char *)path("server.crt"), "--tls-key", (char *)path("server.key"), NULL};
    cr_expect_eq(ldh_run(argv2, NULL, out, out, 20000), 0, "a good pair fails --check");
    ldh_rmtree(dir);
}
