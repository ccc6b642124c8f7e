#include "core/tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/error.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>
#include <nng/supplemental/tls/tls.h>

#include "core/err.h"

static nng_tls_config *server_cfg;

static int is_tls(const char *url)
{
    return strncmp(url, "tls+", 4) == 0 || strncmp(url, "wss", 3) == 0;
}

static void mbed_why(char *why, size_t len, const char *what, const char *path, int rv)
{
    char err[160];
    mbedtls_strerror(rv, err, sizeof err);
    snprintf(why, len, "%s %s: %s", what, path, err);
}

int ld_tls_check_files(const ld_tls_files *f, char *why, size_t len)
{
    if (!f->cert || !f->key) {
        snprintf(why, len, "TLS needs both --tls-cert and --tls-key");
        return LD_EINVAL;
    }
    mbedtls_x509_crt crt, ca;
    mbedtls_pk_context pk;
    mbedtls_x509_crt_init(&crt);
    mbedtls_x509_crt_init(&ca);
    mbedtls_pk_init(&pk);
    int rv, out = LD_EINVAL;
    if ((rv = mbedtls_x509_crt_parse_file(&crt, f->cert)) != 0) {
        mbed_why(why, len, "--tls-cert", f->cert, rv);
    } else if ((rv = mbedtls_pk_parse_keyfile(&pk, f->key, NULL)) != 0) {
        mbed_why(why, len, "--tls-key", f->key, rv);
    } else if (mbedtls_pk_check_pair(&crt.pk, &pk) != 0) {
        snprintf(why, len, "--tls-key %s is not the key of the certificate in --tls-cert %s",
                 f->key, f->cert);
    } else if (mbedtls_x509_time_is_past(&crt.valid_to)) {
        snprintf(why, len, "--tls-cert %s expired on %04d-%02d-%02d", f->cert,
                 crt.valid_to.year, crt.valid_to.mon, crt.valid_to.day);
    } else if (mbedtls_x509_time_is_future(&crt.valid_from)) {
        snprintf(why, len, "--tls-cert %s is not valid before %04d-%02d-%02d", f->cert,
                 crt.valid_from.year, crt.valid_from.mon, crt.valid_from.day);
    } else if (f->ca && (rv = mbedtls_x509_crt_parse_file(&ca, f->ca)) != 0) {
        mbed_why(why, len, "--tls-ca", f->ca, rv);
    } else {
        out = 0;
    }
    mbedtls_pk_free(&pk);
    mbedtls_x509_crt_free(&ca);
    mbedtls_x509_crt_free(&crt);
    return out;
}

/* read_file returns the whole file, NUL-terminated (malloc'd), or NULL. */
static char *read_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    char *buf = NULL;
    long n = fseek(fp, 0, SEEK_END) == 0 ? ftell(fp) : -1;
    if (n >= 0 && n < (1 << 20) && fseek(fp, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1))) {
        if (fread(buf, 1, (size_t)n, fp) != (size_t)n) {
            free(buf);
            buf = NULL;
        } else {
            buf[n] = '\0';
        }
    }
    fclose(fp);
    return buf;
}

/* configure fills <cfg> from <f>: own certificate if given, CA if given. */
static int configure(nng_tls_config *cfg, const ld_tls_files *f, int server, char *why,
                     size_t len)
{
    int rv;
    if ((rv = nng_tls_config_version(cfg, NNG_TLS_1_2, NNG_TLS_1_3)) != 0 &&
        (rv = nng_tls_config_version(cfg, NNG_TLS_1_2, NNG_TLS_1_2)) != 0) {
        snprintf(why, len, "TLS 1.2: %s", nng_strerror(rv));
        return LD_EINVAL;
    }
    if (f->cert && f->key) {
        char *cert = read_file(f->cert), *key = read_file(f->key);
        rv = cert && key ? nng_tls_config_own_cert(cfg, cert, key, NULL) : NNG_ENOENT;
        free(cert);
        free(key);
        if (rv != 0) {
            snprintf(why, len, "--tls-cert %s / --tls-key %s: %s", f->cert, f->key,
                     nng_strerror(rv));
            return LD_EINVAL;
        }
    }
    if (f->ca) {
        if ((rv = nng_tls_config_ca_file(cfg, f->ca)) != 0) {
            snprintf(why, len, "--tls-ca %s: %s", f->ca, nng_strerror(rv));
            return LD_EINVAL;
        }
    }
    /* server: a CA means client certificates are required (mutual TLS);
     * client: the server is always verified, so a CA is required. */
    if (!server && !f->ca) {
        snprintf(why, len, "--tls-ca is needed to verify the server");
        return LD_EINVAL;
    }
    nng_tls_auth_mode mode = f->ca ? NNG_TLS_AUTH_MODE_REQUIRED : NNG_TLS_AUTH_MODE_NONE;
    if ((rv = nng_tls_config_auth_mode(cfg, mode)) != 0) {
        snprintf(why, len, "TLS auth mode: %s", nng_strerror(rv));
        return LD_EINVAL;
    }
    if (!server && f->server_name && (rv = nng_tls_config_server_name(cfg, f->server_name)) != 0) {
        snprintf(why, len, "TLS server name %s: %s", f->server_name, nng_strerror(rv));
        return LD_EINVAL;
    }
    return 0;
}

int ld_tls_server_setup(const ld_tls_files *f, char *why, size_t len)
{
    int rv = ld_tls_check_files(f, why, len);
    if (rv != 0) return rv;
    nng_tls_config *cfg;
    if (nng_tls_config_alloc(&cfg, NNG_TLS_MODE_SERVER) != 0) {
        snprintf(why, len, "TLS is not available in this libnng");
        return LD_EINVAL;
    }
    if ((rv = configure(cfg, f, 1, why, len)) != 0) {
        nng_tls_config_free(cfg);
        return rv;
    }
    ld_tls_server_teardown();
    server_cfg = cfg;
    return 0;
}

void ld_tls_server_teardown(void)
{
    if (server_cfg) nng_tls_config_free(server_cfg);
    server_cfg = NULL;
}

int ld_listen(nng_socket s, const char *url)
{
    if (!is_tls(url)) return nng_listen(s, url, NULL, 0);
    if (!server_cfg) return NNG_EINVAL;
    nng_listener l;
    int rv = nng_listener_create(&l, s, url);
    if (rv != 0) return rv;
    if ((rv = nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, server_cfg)) != 0 ||
        (rv = nng_listener_start(l, 0)) != 0) {
        nng_listener_close(l);
        return rv;
    }
    return 0;
}

int ld_dial(nng_socket s, const char *url, const ld_tls_files *f, int flags)
{
    if (!is_tls(url)) return nng_dial(s, url, NULL, flags);
    static const ld_tls_files none;
    nng_tls_config *cfg;
    nng_dialer d;
    char why[256];
    int rv = nng_tls_config_alloc(&cfg, NNG_TLS_MODE_CLIENT);
    if (rv != 0) return rv;
    if (configure(cfg, f ? f : &none, 0, why, sizeof why) != 0) {
        nng_tls_config_free(cfg);
        return NNG_EINVAL;
    }
    if ((rv = nng_dialer_create(&d, s, url)) == 0) {
        if ((rv = nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, cfg)) != 0 ||
            (rv = nng_dialer_start(d, flags)) != 0)
            nng_dialer_close(d);
    }
    nng_tls_config_free(cfg); /* the dialer holds its own reference */
    return rv;
}
