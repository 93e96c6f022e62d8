/*
 * err.h - the one error convention of Onsale.
 *
 * Every function that can fail returns int: 0 (ONS_OK) on success or one of
 * the negative codes below. Foreign error types (PGresult status, redisReply,
 * rd_kafka_resp_err_t, nng errors) are translated to these codes at the module
 * edge and never passed upward. The list is an X-macro so the enum and the
 * message table cannot drift apart.
 */
#ifndef ONSALE_COMMON_ERR_H
#define ONSALE_COMMON_ERR_H

#define ONS_ERRORS(X)                                                          \
    X(ONS_OK, 0, "ok")                                                         \
    X(ONS_ENOMEM, -1, "out of memory")                                         \
    X(ONS_EINVAL, -2, "invalid argument")                                      \
    X(ONS_ERANGE, -3, "value out of range")                                    \
    X(ONS_EIO, -4, "input/output error")                                       \
    X(ONS_ENOTFOUND, -5, "not found")                                          \
    X(ONS_EEXIST, -6, "already exists")                                        \
    X(ONS_ETIMEDOUT, -7, "timed out")                                          \
    X(ONS_EUNAVAIL, -8, "dependency unavailable")                              \
    X(ONS_EFENCED, -9, "fenced by a newer partition owner")                    \
    X(ONS_ECONFLICT, -10, "conflicting state")                                 \
    X(ONS_EPARSE, -11, "malformed input")                                      \
    X(ONS_EFULL, -12, "queue or buffer full")                                  \
    X(ONS_ECLOSED, -13, "closed or shutting down")                             \
    X(ONS_EAUTH, -14, "authentication failed")                                 \
    X(ONS_EDB, -15, "database error")                                          \
    X(ONS_EKAFKA, -16, "kafka error")                                          \
    X(ONS_EREDIS, -17, "redis error")                                          \
    X(ONS_EUNKNOWN, -18, "outcome unknown: it may have happened")

enum ons_err {
#define ONS_ERR_ENUM(name, code, msg) name = code,
    ONS_ERRORS(ONS_ERR_ENUM)
#undef ONS_ERR_ENUM
};

/* Returns a static, human-readable message for an error code; never NULL. */
const char *ons_strerror(int err);

/* Returns the code's symbolic name ("ONS_EIO"); never NULL. */
const char *ons_errname(int err);

#endif
