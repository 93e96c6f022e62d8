/* err.c - message and name tables for the codes listed in err.h. */
#include "common/err.h"

const char *ons_strerror(int err)
{
    switch (err) {
#define ONS_ERR_MSG(name, code, msg)                                           \
    case code:                                                                 \
        return msg;
        ONS_ERRORS(ONS_ERR_MSG)
#undef ONS_ERR_MSG
    }
    return "unknown error";
}

const char *ons_errname(int err)
{
    switch (err) {
#define ONS_ERR_NAME(name, code, msg)                                          \
    case code:                                                                 \
        return #name;
        ONS_ERRORS(ONS_ERR_NAME)
#undef ONS_ERR_NAME
    }
    return "ONS_EUNKNOWN";
}
