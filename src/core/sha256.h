/* sha256.h: SHA-256 (FIPS 180-4), for the audit trail's hash chain.
 * Small and dependency-free; not constant-time (it hashes public data).
 * Uses the CPU's SHA instructions where it has them (x86-64: checked once,
 * at the first use), else portable C; both give the same digests. */
#ifndef LD_CORE_SHA256_H
#define LD_CORE_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct ld_sha256 {
    uint32_t h[8];
    uint64_t len;
    uint8_t buf[64];
    size_t nbuf;
} ld_sha256;

void ld_sha256_init(ld_sha256 *c);
void ld_sha256_update(ld_sha256 *c, const void *data, size_t n);
void ld_sha256_final(ld_sha256 *c, uint8_t out[32]);
/* ld_sha256_hex writes the 64 lowercase hex digits of <d> and a NUL into <hex>. */
/* ld_sha256_accel reports (<on> < 0) or sets (0: portable C, 1: the CPU's
 * SHA instructions if it has them) the implementation; returns 1 if the
 * instructions are in use. For tests and benchmarks. */
int ld_sha256_accel(int on);
void ld_sha256_hex(const uint8_t d[32], char hex[65]);

#endif
