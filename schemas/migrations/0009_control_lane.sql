-- 0009_control_lane.sql - money and control do not wait behind joins
-- (issue 12, docs/pipeline.md "Two lanes").
--
--   * Records that must not queue behind a join backlog (checkout,
--     payment_result, cancel, ticket, event_status) ride a second topic,
--     co-partitioned with the intents topic (same partition count, same
--     key). The owner of partition p owns p of both topics under one epoch:
--     control_next_offset is the control topic's cursor, written by the same
--     fenced UPDATE, in the same transaction, as next_offset.
--   * A cancel on the control lane can be applied before the intent it
--     cancels (still unread in the intents lane). The owner remembers it as a
--     tombstone, written in the cancel's batch transaction, so that the
--     intent, when it arrives (after a crash or a move of the partition
--     too), is released at once and never takes seats. The row goes when the
--     intent is applied; rows below next_offset are leftovers a claim deletes.
--   * An order is named by its checkout record's place in the log; a
--     checkout on the control lane sets bit 39 of the offset part
--     (queue/intent_id.h Q_SEQ_CONTROL_BIT), so its order_id never equals
--     one made from the intents topic's offsets (orders made before this
--     migration).

ALTER TABLE partition_owner
    ADD COLUMN control_next_offset bigint NOT NULL DEFAULT 0
        CHECK (control_next_offset >= 0 AND control_next_offset < (1::bigint << 39));

CREATE TABLE intent_tombstones (
    partition     integer NOT NULL CHECK (partition >= 0),
    kafka_offset  bigint  NOT NULL CHECK (kafka_offset >= 0 AND kafka_offset < (1::bigint << 40)),
    user_id       bigint  NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (partition, kafka_offset)
);
