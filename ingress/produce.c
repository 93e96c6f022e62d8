/* produce.c - Kafka send with a job-thread continuation; see produce.h. */
#include "ingress/produce.h"
#include "common/err.h"
#include "common/log.h"
#include "ingress/json_io.h"

#include <stdlib.h>

typedef struct pending {
    ing_req *r;
    ing_job_fn done;
} pending;

static void run_done(ing_worker *w, void *arg)
{
    pending *pd = arg;
    ing_req *r = pd->r;
    ing_job_fn done = pd->done;
    free(pd);
    done(w, r);
}

/* Delivery report, on the producer's poll thread: hand over to a job thread
 * (forced past the queue bound: this request was already admitted). */
static void on_delivered(void *arg, int err, int32_t partition, int64_t offset)
{
    pending *pd = arg;
    ing_req *r = pd->r;
    r->produce_err = err;
    r->produced_partition = partition;
    r->produced_offset = offset;
    if (err && r->app->produce_errors)
        ons_counter_add(r->app->produce_errors, 1);
    if (!err && r->app->produced)
        ons_counter_add(r->app->produced, 1);
    if (ing_pool_submit(r->app->pool, run_done, pd, 1) != 0) {
        free(pd);
        r->retry_after = 1;
        ing_reply_error(r, 503, "unavailable", NULL, "The server is shutting down.");
    }
}

int ing_produce(ing_req *r, const q_msg *m, ing_job_fn done)
{
    char *buf = NULL;
    size_t len = 0;
    int rc = q_msg_encode(m, &buf, &len);
    if (rc)
        return rc;
    pending *pd = malloc(sizeof *pd);
    if (!pd) {
        free(buf);
        return ONS_ENOMEM;
    }
    pd->r = r;
    pd->done = done;
    rc = q_producer_send(r->app->producer, m->event_id, buf, len, on_delivered, pd);
    free(buf);
    if (rc) {
        free(pd);
        if (r->app->produce_errors)
            ons_counter_add(r->app->produce_errors, 1);
    }
    return rc;
}
