/* pgutil.c - one-statement PostgreSQL helpers; see pgutil.h. */
#include "workers/pgutil.h"
#include "common/err.h"
#include "common/log.h"

PGresult *wk_pg_exec(PGconn *conn, ExecStatusType want, const char *what, const char *sql, int n,
                     const char *const *vals)
{
    PGresult *r = PQexecParams(conn, sql, n, NULL, vals, NULL, NULL, 0);
    if (r && PQresultStatus(r) == want)
        return r;
    ons_log_error("postgres%s%s: %s", what ? " " : "", what ? what : "",
                  r ? PQresultErrorMessage(r) : PQerrorMessage(conn));
    PQclear(r);
    return NULL;
}

int wk_pg_command(PGconn *conn, const char *what, const char *sql, int n, const char *const *vals)
{
    PGresult *r = wk_pg_exec(conn, PGRES_COMMAND_OK, what, sql, n, vals);
    if (!r)
        return ONS_EDB;
    ons_log_debug("%s: %s rows", what, PQcmdTuples(r));
    PQclear(r);
    return 0;
}
