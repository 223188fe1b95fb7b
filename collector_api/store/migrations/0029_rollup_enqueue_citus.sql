-- The rollup queue's triggers (0025) read their transition tables in one statement and write
-- viewer_rollup_pending in another, so that the write reads no transition table. On Citus
-- (docs/scaling.md, "On Citus") workflow_logs' triggers run on the shards and viewer_rollup_pending
-- is distributed: an INSERT into it that SELECTs from a transition table failed there ("executor
-- could not find named tuplestore new_rows": every log insert failed), while an INSERT from
-- arrays is routed to the co-located shard on the same node. On one node the queue rows are the
-- same as before, one statement more per trigger.
CREATE OR REPLACE FUNCTION flusso_rollup_enqueue_insert() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    clients text[]; days date[]; ids bigint[]; times timestamptz[];
BEGIN
    SELECT array_agg(client_id), array_agg((executed_at AT TIME ZONE 'UTC')::date), array_agg(id),
           array_agg(executed_at)
    INTO clients, days, ids, times FROM new_rows;
    INSERT INTO viewer_rollup_pending (client_id, day, log_id, executed_at)
    SELECT * FROM unnest(clients, days, ids, times);
    RETURN NULL;
END
$$;

-- Dirty days: as in 0025 (the columns the rollups read).
CREATE OR REPLACE FUNCTION flusso_rollup_enqueue_update() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    clients text[]; days date[];
BEGIN
    SELECT array_agg(client_id), array_agg(day) INTO clients, days FROM (
        SELECT DISTINCT v.client_id, (v.executed_at AT TIME ZONE 'UTC')::date AS day
        FROM old_rows o JOIN new_rows n ON n.id = o.id
        CROSS JOIN LATERAL (VALUES (o.client_id, o.executed_at), (n.client_id, n.executed_at)) AS v(client_id, executed_at)
        WHERE (o.client_id, o.status, o.executed_at, o.overall_confidence, o.hallucination_risk,
               o.execution_time_seconds, o.input_tokens, o.output_tokens, o.cost_usd, o.node_durations,
               o.critical_path, o.usage_by_model, o.resolution_status, o.session_key)
            IS DISTINCT FROM
              (n.client_id, n.status, n.executed_at, n.overall_confidence, n.hallucination_risk,
               n.execution_time_seconds, n.input_tokens, n.output_tokens, n.cost_usd, n.node_durations,
               n.critical_path, n.usage_by_model, n.resolution_status, n.session_key)) AS changed;
    INSERT INTO viewer_rollup_pending (client_id, day) SELECT * FROM unnest(clients, days);
    RETURN NULL;
END
$$;
