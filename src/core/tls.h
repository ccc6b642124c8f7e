/* tls.h: TLS for NNG endpoints (tls+tcp://), through the mbedTLS that
 * Debian's libnng is built with.
 *
 * Server side (linkd): ld_tls_server_setup once at start builds the process's
 * server configuration (certificate and key; with a client CA, a valid client
 * certificate is required: mutual TLS; TLS 1.2 at least). ld_listen then
 * listens on any URL, attaching that configuration to tls+ URLs. NNG would
 * happily listen on TLS with no certificate at all, so ld_listen refuses a
 * tls+ URL when no configuration was set up.
 *
 * Client side (linkctl, linkload, tests): ld_dial attaches a client
 * configuration built from ld_tls_files (CA to verify the server; optional
 * certificate and key for mutual TLS).
 *
 * ld_tls_check_files checks that a certificate and key exist, are readable,
 * parse, match each other and have not expired; linkd runs it at start and
 * in --check. */
#ifndef LD_CORE_TLS_H
#define LD_CORE_TLS_H

#include <stddef.h>

#include <nng/nng.h>

typedef struct ld_tls_files {
    const char *cert;        /* PEM certificate (chain) */
    const char *key;         /* PEM private key, unencrypted */
    const char *ca;          /* PEM CA bundle: server: verify clients; client: verify server */
    const char *server_name; /* client: the name to verify; NULL: the URL's host */
} ld_tls_files;

/* ld_tls_check_files returns 0, or LD_EINVAL with a sentence in <why>. */
int ld_tls_check_files(const ld_tls_files *f, char *why, size_t len);

/* ld_tls_server_setup checks the files and builds the server configuration.
 * Returns 0 or LD_EINVAL with <why>. */
int ld_tls_server_setup(const ld_tls_files *f, char *why, size_t len);
void ld_tls_server_teardown(void);

/* ld_listen is nng_listen, with the server configuration on tls+ URLs.
 * NNG_EINVAL for a tls+ URL without ld_tls_server_setup. */
int ld_listen(nng_socket s, const char *url);

/* ld_dial is nng_dial (flags as nng_dial) with a client configuration from
 * <f> on tls+ URLs (<f> may be NULL for plain URLs). */
int ld_dial(nng_socket s, const char *url, const ld_tls_files *f, int flags);

#endif
