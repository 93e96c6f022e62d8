/*
 * produce.h - sending a request's record to Kafka and continuing the request
 * on a job thread once the delivery report is in.
 *
 * ing_produce() encodes m and queues it on the app's producer. When the
 * broker acknowledged it (or it failed), the request's produce_err,
 * produced_partition and produced_offset are set and done(worker, r) runs on
 * a job thread: every reply that says "accepted" is built there, from a
 * successful delivery report only.
 */
#ifndef ONSALE_INGRESS_PRODUCE_H
#define ONSALE_INGRESS_PRODUCE_H

#include "ingress/server.h"
#include "queue/msg.h"

/* Returns 0 (done will run exactly once) or an error (ONS_EFULL, ONS_EKAFKA,
 * ONS_EINVAL, ...): then done never runs and the caller still owns r. */
int ing_produce(ing_req *r, const q_msg *m, ing_job_fn done);

#endif
