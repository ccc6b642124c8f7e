#include "core/err.h"

#include <nng/nng.h>

const char *ld_strerror(int code)
{
    switch (code) {
    case 0: return "ok";
#define LD__ERR_STR(name, s) case LD_E##name: return s;
    LD_ERRNO_MAP(LD__ERR_STR)
#undef LD__ERR_STR
    default: return "unknown error";
    }
}

int ld_err_from_nng(int rv)
{
    switch (rv) {
    case 0: return 0;
    case NNG_ENOMEM: return LD_ENOMEM;
    case NNG_EINVAL:
    case NNG_EADDRINVAL: return LD_EINVAL;
    case NNG_ETIMEDOUT: return LD_ETIMEDOUT;
    case NNG_EMSGSIZE: return LD_ETOOBIG;
    case NNG_EAGAIN: return LD_EBUSY;
    case NNG_ENOENT: return LD_ENOENT;
    case NNG_EPERM: return LD_EPERM;
    default: return LD_ENNG;
    }
}
