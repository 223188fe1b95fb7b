-- The alert job's minute and hour rollups (0012) refreshed additively (store.alerts.rollups), the
-- way 0025 made the overview's daily rollups additive: a refresh's work follows what was stored
-- since the last one, not how many logs the touched buckets already hold. Before, each refresh
-- recomputed every (tenant, minute) and (tenant, hour) touched since a created_at cursor whole,
-- re-reading every log of those buckets: a tenant storing 1,000 logs/s re-read its current hour
-- (up to 3.6 M logs) every refresh, a tenant with history ~1,700 logs per hour it touched.
--
-- alert_rollup_pending is the queue, filled by statement-level triggers on workflow_logs in the
-- transaction that writes the logs, so a queue row is visible exactly when its log is:
--   a new log executed within the hour rollups' reach (8 days): one row with its key
--     (log_id, executed_at): the refresh adds that log's figures to its minute and hour;
--   a log changed in place in a column the alert rollups read (the trace re-assembly's replace):
--     one row per (tenant, UTC minute) of its old and new version with log_id NULL: the refresh
--     recomputes that tenant's minute and hour whole (and adds no queued log to them);
--   an erasure: its (tenant, minute) pairs, log_id NULL, queued by recompute_alert_minutes.
-- The refresh reads and deletes the queue in ONE REPEATABLE READ snapshot taken after the alert
-- rollups' lock (db.locked_snapshot): each log is counted once, by the first refresh whose
-- snapshot sees it. A row whose log was erased since joins nothing. No index: the refresh reads
-- the whole queue (what was stored since the last alert tick) each time. A delete queues nothing
-- by trigger: an erasure queues its minutes itself, retention forgets the rollups of the whole
-- UTC days it expired (store.erasure.retention).
-- Only the owner reads or writes it (the triggers are SECURITY DEFINER, the alert job and the
-- erasure write as the owner, as they write alert_rollup): no grant, and FORCE row-level security
-- with the owner's policy only, so neither a tenant scope nor the provider's sees a row.
CREATE TABLE alert_rollup_pending (
    client_id    text NOT NULL,
    minute       timestamptz NOT NULL,  -- UTC minute of executed_at
    log_id       bigint,                -- NULL: recompute (client_id, minute) and its hour whole
    executed_at  timestamptz            -- with log_id, the log's key (workflow_logs' primary key)
);
ALTER TABLE alert_rollup_pending ENABLE ROW LEVEL SECURITY;
ALTER TABLE alert_rollup_pending FORCE ROW LEVEL SECURITY;
CREATE POLICY owner_all ON alert_rollup_pending TO CURRENT_USER USING (true) WITH CHECK (true);

-- 8 days: store.alerts.rollups.HOUR_DAYS. A log executed earlier is in no bucket the rollups keep.
CREATE FUNCTION flusso_alert_rollup_enqueue_insert() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    clients text[]; minutes timestamptz[]; ids bigint[]; times timestamptz[];
BEGIN
    -- Read the transition table in one statement, write the queue from arrays in another (as 0029
    -- does for the overview's queue: on Citus an INSERT that SELECTs from a transition table fails
    -- on the shards, an INSERT from arrays is routed to the co-located shard).
    SELECT array_agg(client_id), array_agg(date_trunc('minute', executed_at, 'UTC')), array_agg(id),
           array_agg(executed_at)
    INTO clients, minutes, ids, times FROM new_rows WHERE executed_at >= now() - interval '8 days';
    INSERT INTO alert_rollup_pending (client_id, minute, log_id, executed_at)
    SELECT * FROM unnest(clients, minutes, ids, times);
    RETURN NULL;
END
$$;

-- Dirty minutes: the columns the alert rollups read (store.alerts.rollups: status, risk, cost,
-- execution time, by tenant and minute of executed_at). Any other update dirties nothing.
CREATE FUNCTION flusso_alert_rollup_enqueue_update() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    clients text[]; minutes timestamptz[];
BEGIN
    SELECT array_agg(client_id), array_agg(minute) INTO clients, minutes FROM (
        SELECT DISTINCT v.client_id, date_trunc('minute', v.executed_at, 'UTC') AS minute
        FROM old_rows o JOIN new_rows n ON n.id = o.id
        CROSS JOIN LATERAL (VALUES (o.client_id, o.executed_at), (n.client_id, n.executed_at)) AS v(client_id, executed_at)
        WHERE v.executed_at >= now() - interval '8 days'
          AND (o.client_id, o.status, o.executed_at, o.hallucination_risk, o.cost_usd, o.execution_time_seconds)
              IS DISTINCT FROM
              (n.client_id, n.status, n.executed_at, n.hallucination_risk, n.cost_usd, n.execution_time_seconds)
    ) AS changed;
    INSERT INTO alert_rollup_pending (client_id, minute) SELECT * FROM unnest(clients, minutes);
    RETURN NULL;
END
$$;

-- No log may be written between the seed below and the triggers.
LOCK TABLE workflow_logs IN SHARE ROW EXCLUSIVE MODE;

-- Logs stored since the last refresh of the cursor this migration retires (its created_at
-- watermark, less the 2 minutes it allowed for late commits), within reach: their (tenant, minute)
-- is recomputed whole by the first refresh. Never refreshed (no watermark): every minute in reach.
INSERT INTO alert_rollup_pending (client_id, minute)
SELECT DISTINCT client_id, date_trunc('minute', executed_at, 'UTC') FROM workflow_logs
WHERE executed_at >= now() - interval '8 days'
  AND created_at >= coalesce((SELECT watermark - interval '2 minutes' FROM alert_rollup_state WHERE id = 1),
                             '-infinity');

-- alert_rollup_state.watermark stays for a collector of an older version still running beside a
-- new one during an upgrade. It is set to a watermark no log reaches, 9999-12-31 (as every new
-- refresh leaves it; not 'infinity', which psycopg cannot load): that collector's refresh finds
-- nothing to recompute, then moves the watermark back to its cursor, and its next refresh
-- recomputes buckets of logs maybe still queued. A new refresh finding another watermark
-- recomputes whole every bucket of the logs it finds queued, never adding them to a bucket the
-- older refresh may have recomputed with them (store.alerts.rollups.RETIRED_WATERMARK).
UPDATE alert_rollup_state SET watermark = '9999-12-31 00:00:00+00' WHERE id = 1;

CREATE TRIGGER alert_rollup_pending_insert AFTER INSERT ON workflow_logs
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION flusso_alert_rollup_enqueue_insert();
CREATE TRIGGER alert_rollup_pending_update AFTER UPDATE ON workflow_logs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION flusso_alert_rollup_enqueue_update();
