/*
 * pgutil.h - one-statement PostgreSQL helpers shared by the worker's store,
 * its checkout store and the payments worker.
 *
 * They translate a failed PGresult into a log line and a NULL/ONS_EDB at the
 * module edge, so callers never inspect result statuses themselves. They run
 * on the caller's thread and block on the connection.
 */
#ifndef ONSALE_WORKERS_PGUTIL_H
#define ONSALE_WORKERS_PGUTIL_H

#include <libpq-fe.h>

/* Runs sql with n text parameters. Returns the result when its status is
 * want (the caller PQclear()s it); otherwise logs "postgres WHAT: message"
 * ("postgres: message" when what is NULL), clears it and returns NULL. */
PGresult *wk_pg_exec(PGconn *conn, ExecStatusType want, const char *what, const char *sql, int n,
                     const char *const *vals);

/* Runs a statement that returns no rows and logs its row count at debug
 * level. Returns 0 or ONS_EDB (logged). */
int wk_pg_command(PGconn *conn, const char *what, const char *sql, int n, const char *const *vals);

#endif
