/* test_endpoint.c: linkd listens in plain tcp on loopback only, unless the
 * operator says --insecure-listen or uses TLS. */
#include <criterion/criterion.h>
#include <string.h>

#include "daemon/endpoint.h"

static int check(const char *url, int allow)
{
    char why[256] = "";
    int rv = ld_endpoint_check("--ingest", url, allow, why, sizeof why);
    if (rv != LD_ENDPOINT_OK) cr_expect(strstr(why, url) != NULL, "the reason names the URL");
    return rv;
}

Test(endpoint, loopback_and_local_transports_are_fine)
{
    cr_expect_eq(check("tcp://127.0.0.1:7450", 0), LD_ENDPOINT_OK);
    cr_expect_eq(check("tcp://127.9.8.7:7450", 0), LD_ENDPOINT_OK);
    cr_expect_eq(check("tcp://localhost:7450", 0), LD_ENDPOINT_OK);
    cr_expect_eq(check("tcp://[::1]:7450", 0), LD_ENDPOINT_OK);
    cr_expect_eq(check("ipc:///run/linkd/ingest.sock", 0), LD_ENDPOINT_OK);
    cr_expect_eq(check("inproc://x", 0), LD_ENDPOINT_OK);
}

Test(endpoint, tls_is_fine_anywhere)
{
    cr_expect_eq(check("tls+tcp://0.0.0.0:7450", 0), LD_ENDPOINT_OK);
    cr_expect_eq(check("tls+tcp://10.1.2.3:7450", 0), LD_ENDPOINT_OK);
    cr_expect(ld_endpoint_is_tls("tls+tcp6://[::]:1"));
    cr_expect(!ld_endpoint_is_tls("tcp://127.0.0.1:1"));
}

Test(endpoint, plain_tcp_beyond_loopback_is_refused_without_the_flag)
{
    cr_expect_eq(check("tcp://0.0.0.0:7450", 0), LD_ENDPOINT_REFUSED);
    cr_expect_eq(check("tcp://:7450", 0), LD_ENDPOINT_REFUSED, "empty host = every interface");
    cr_expect_eq(check("tcp://10.1.2.3:7450", 0), LD_ENDPOINT_REFUSED);
    cr_expect_eq(check("tcp://[::]:7450", 0), LD_ENDPOINT_REFUSED);
    cr_expect_eq(check("tcp://dispatch.example:7450", 0), LD_ENDPOINT_REFUSED,
                 "a name may resolve to anything");
    cr_expect_eq(check("tcp://128.0.0.1:7450", 0), LD_ENDPOINT_REFUSED);
    cr_expect_eq(check("ws://0.0.0.0:80/x", 0), LD_ENDPOINT_REFUSED);
}

Test(endpoint, the_flag_allows_it_with_a_warning)
{
    cr_expect_eq(check("tcp://0.0.0.0:7450", 1), LD_ENDPOINT_INSECURE);
}
