/*
 * catalog_sql.c - prints the statement GET /v1/events?QS would run, as JSON
 * {"sql": "...", "params": [...]} (or {"error": {...}} for a refused query),
 * for the query-plan tests (tests/integration/test_search.py): they EXPLAIN
 * exactly what the server runs.
 *
 * usage: catalog_sql QS [text|fuzzy [RANK_WINDOW]]
 */
#include "ingress/catalog_store.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: catalog_sql QUERY_STRING [text|fuzzy]\n");
        return 2;
    }
    cat_limits lim = {20, 100, 8, 1000};
    cat_query q;
    cat_error err;
    json_t *out;
    if (cat_parse(argv[1], &lim, &q, &err)) {
        out =
            json_pack("{s:{s:i, s:s, s:s?}}", "error", "status", ing_api_error_row(err.id)->status,
                      "code", ing_api_error_row(err.id)->code, "field", err.field);
    } else {
        cat_match mode = !q.q                                    ? CAT_MATCH_NONE
                         : argc > 2 && !strcmp(argv[2], "fuzzy") ? CAT_MATCH_FUZZY
                                                                 : CAT_MATCH_TEXT;
        static cat_sql s;
        if (cat_build(&q, mode, argc > 3 ? atoi(argv[3]) : 500, &s)) {
            fprintf(stderr, "statement too long\n");
            return 1;
        }
        json_t *params = json_array();
        for (int i = 0; i < s.n; i++)
            json_array_append_new(params, s.params[i] ? json_string(s.params[i]) : json_null());
        out = json_pack("{s:s, s:o}", "sql", s.sql, "params", params);
        cat_query_clear(&q);
    }
    char *text = json_dumps(out, JSON_COMPACT);
    puts(text);
    free(text);
    json_decref(out);
    return 0;
}
