/* err.h: error codes shared by every subsystem.
 *
 * Functions return 0 or a negative LD_E* code; ld_strerror() gives the text.
 * One table (LD_ERRNO_MAP) holds both, so a code can never lack its string. */
#ifndef LD_CORE_ERR_H
#define LD_CORE_ERR_H

#define LD_ERRNO_MAP(X)                                                   \
    X(NOMEM, "out of memory")                                             \
    X(INVAL, "invalid argument")                                          \
    X(PARSE, "rule syntax error")                                         \
    X(RULES, "rules are invalid")                                         \
    X(IO, "input/output error")                                           \
    X(NOENT, "no such file or object")                                    \
    X(BUSY, "back-pressure: retry later")                                 \
    X(TIMEDOUT, "timed out")                                              \
    X(UNAVAIL, "storage unavailable")                                     \
    X(NNG, "messaging error")                                             \
    X(DECODE, "malformed protobuf")                                       \
    X(TOOBIG, "message too large")                                        \
    X(FULL, "capacity exhausted")                                         \
    X(STATE, "not allowed in the current state")                          \
    X(PERM, "permission denied")

enum {
    LD_OK = 0,
#define LD__ERR_ENUM(name, s) LD_E##name,
    LD__ERR_FIRST = -1000,
    LD_ERRNO_MAP(LD__ERR_ENUM)
#undef LD__ERR_ENUM
    LD__ERR_LAST
};

/* ld_strerror returns a static string for any LD_E* code, 0 or unknown. */
const char *ld_strerror(int code);

/* ld_err_from_nng maps an NNG error number to the nearest LD_E* code. */
int ld_err_from_nng(int nng_rv);

#endif
