/* keys.c: `linkctl keygen` and the terminal's side of the signed hello. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include <sodium.h>

#include "core/clock.h"
#include "dispatch/auth.h"
#include "tools/linkctl.h"

static const char secret_tag[] = "ed25519-secret:";

static void keygen_usage(void)
{
    puts("Usage: linkctl keygen (--terminal ID | --source ID) --out FILE\n"
         "\n"
         "Create an Ed25519 key pair for an on-duty terminal or a producer (source).\n"
         "The secret key goes to FILE (mode 0600; keep it where the terminal or\n"
         "producer runs); the public key is printed as the line to add to the rules,\n"
         "under terminal_keys: or source_keys::\n"
         "\n"
         "  terminal_keys:\n"
         "    fire-duty: ed25519:...\n"
         "\n"
         "Then run `linkctl terminal --id ID --key FILE` or `linkctl send --key FILE`.");
}

int ctl_keygen_main(int argc, char **argv)
{
    enum { O_TERM = 256, O_OUT };
    static const struct option opts[] = {
        {"terminal", required_argument, NULL, O_TERM},
        {"source", required_argument, NULL, O_TERM},
        {"out", required_argument, NULL, O_OUT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *id = NULL, *out = NULL;
    int opt;
    optind = 0;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (opt) {
        case O_TERM: id = optarg; break;
        case O_OUT: out = optarg; break;
        case 'h': keygen_usage(); return EX_OK;
        default: return ctl_usage_error("bad option");
        }
    }
    if (!id || !*id || !out)
        return ctl_usage_error("--terminal ID (or --source ID) and --out FILE are required");
    if (sodium_init() < 0) return ctl_usage_error("libsodium cannot start"), EX_SOFTWARE;
    uint8_t pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
    crypto_sign_keypair(pk, sk);
    char b64[sodium_base64_ENCODED_LEN(crypto_sign_SECRETKEYBYTES, sodium_base64_VARIANT_ORIGINAL)];
    sodium_bin2base64(b64, sizeof b64, sk, sizeof sk, sodium_base64_VARIANT_ORIGINAL);
    sodium_memzero(sk, sizeof sk);
    int fd = open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        ctl_warn("keygen: %s: %s%s", out, strerror(errno),
                 errno == EEXIST ? " (not overwriting a key)" : "");
        sodium_memzero(b64, sizeof b64);
        return EX_CANTCREAT;
    }
    FILE *f = fdopen(fd, "w");
    int ok = f && fprintf(f, "%s%s\n", secret_tag, b64) > 0;
    ok = (f ? fclose(f) == 0 : (close(fd), 0)) && ok;
    sodium_memzero(b64, sizeof b64);
    if (!ok) {
        ctl_warn("keygen: cannot write %s", out);
        return EX_IOERR;
    }
    sodium_bin2base64(b64, sizeof b64, pk, sizeof pk, sodium_base64_VARIANT_ORIGINAL);
    printf("  %s: ed25519:%s\n", id, b64);
    return EX_OK;
}

int ctl_load_secret(const char *path, uint8_t sk[64])
{
    FILE *f = fopen(path, "r");
    if (!f) {
        ctl_warn("--key %s: %s", path, strerror(errno));
        return -1;
    }
    char line[256];
    int ok = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    line[ok ? strcspn(line, "\r\n") : 0] = '\0';
    size_t len = 0;
    if (sodium_init() < 0 || strncmp(line, secret_tag, sizeof secret_tag - 1) != 0 ||
        sodium_base642bin(sk, 64, line + sizeof secret_tag - 1,
                          strlen(line + sizeof secret_tag - 1), NULL, &len, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 || len != 64) {
        sodium_memzero(line, sizeof line);
        ctl_warn("--key %s: not a key from `linkctl keygen`", path);
        return -1;
    }
    sodium_memzero(line, sizeof line);
    return 0;
}

/* sign fills <nonce> and <sig> for a hello of kind <tag> from <id> now; returns its time. */
static int64_t sign(const char *tag, const char *id, const uint8_t sk[64], uint8_t nonce[16],
                    uint8_t sig[64])
{
    uint8_t msg[64 + LD_MAX_ID_LEN + 1];
    randombytes_buf(nonce, 16);
    int64_t now = (int64_t)ld_wall_ms();
    crypto_sign_detached(sig, NULL, msg, ld_auth_message(msg, tag, id, now, nonce), sk);
    return now;
}

void ctl_sign_source_hello(ctl_source_hello *h, const char *id, const uint8_t sk[64])
{
    linkd__v1__source_hello__init(&h->pb);
    h->pb.source_id = (char *)id;
    h->pb.has_timestamp_ms = h->pb.has_nonce = h->pb.has_signature = 1;
    h->pb.timestamp_ms = sign(LD_HELLO_SOURCE, id, sk, h->nonce, h->sig);
    h->pb.nonce = (ProtobufCBinaryData){sizeof h->nonce, h->nonce};
    h->pb.signature = (ProtobufCBinaryData){sizeof h->sig, h->sig};
}

void ctl_sign_hello(ctl_hello *h, const char *id, const uint8_t sk[64])
{
    linkd__v1__terminal_hello__init(&h->pb);
    h->pb.terminal_id = (char *)id;
    h->pb.has_timestamp_ms = h->pb.has_nonce = h->pb.has_signature = 1;
    h->pb.timestamp_ms = sign(LD_HELLO_TERMINAL, id, sk, h->nonce, h->sig);
    h->pb.nonce = (ProtobufCBinaryData){sizeof h->nonce, h->nonce};
    h->pb.signature = (ProtobufCBinaryData){sizeof h->sig, h->sig};
}
