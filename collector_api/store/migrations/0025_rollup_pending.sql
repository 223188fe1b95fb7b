-- The overview's daily rollups (0002, 0013, 0017) refreshed additively (store.logs.rollups):
-- the refresh's work follows what was stored since the last one, not how many logs a tenant's
-- touched days already hold. Before, each refresh recomputed every (tenant, UTC day) touched since
-- a created_at cursor whole: a tenant with history receiving logs of many past days (a backfill)
-- re-aggregated ~100,000 logs per refresh (docs/benchmarks-viewer.md, "Ten million logs").
--
-- viewer_rollup_pending is the queue, filled by statement-level triggers on workflow_logs in the
-- transaction that writes the logs, so a queue row is visible exactly when its log is:
--   a new log: one row with its key (log_id, executed_at): the refresh adds that log's figures;
--   a log changed in place in a column a rollup reads (the trace re-assembly's replace, the
--     derived backfill): one row per (tenant, day) of its old and new version with log_id NULL:
--     the refresh recomputes that tenant's day whole.
-- The refresh reads and deletes the queue in ONE REPEATABLE READ snapshot, taken after the rollups'
-- lock (a session-level advisory lock on its connection, before BEGIN): each log is counted once,
-- by the first refresh whose snapshot sees it. A row whose log was erased since joins nothing.
-- No index: the refresh reads the whole queue (what was stored in ~30 s) each time.
-- Deletes queue nothing: an erasure recomputes the tenant's days itself (recompute_days), retention
-- drops the rollups of the days it expired. The triggers are the partitioned table's: a statement
-- naming one partition directly (no code does) would bypass them.
CREATE TABLE viewer_rollup_pending (
    client_id    text NOT NULL,
    day          date NOT NULL,         -- UTC day of executed_at
    log_id       bigint,                -- NULL: recompute (client_id, day) whole
    executed_at  timestamptz            -- with log_id, the log's key (workflow_logs' primary key)
);

-- Written by the triggers (owner's rights); the refresh (provider scope) reads and deletes, and
-- a recompute after an erasure queues the (tenant, day) pairs it recomputed (store.logs.rollups).
-- A tenant has no policy here: it reads nothing and writes nothing (not even its own rows).
GRANT SELECT, INSERT, DELETE ON viewer_rollup_pending TO flusso_app;
ALTER TABLE viewer_rollup_pending ENABLE ROW LEVEL SECURITY;
ALTER TABLE viewer_rollup_pending FORCE ROW LEVEL SECURITY;
CREATE POLICY provider_all ON viewer_rollup_pending
    USING (current_setting('flusso.scope', true) = 'provider')
    WITH CHECK (current_setting('flusso.scope', true) = 'provider');
CREATE POLICY provider_role_provider_all ON viewer_rollup_pending TO flusso_provider
    USING (true) WITH CHECK (true);
CREATE POLICY owner_all ON viewer_rollup_pending TO CURRENT_USER USING (true) WITH CHECK (true);

-- The additive refresh updates rollup rows in place (n = n + delta): the provider's policies
-- `provider_all` (FOR ALL) already cover UPDATE; a tenant has no UPDATE policy.
GRANT UPDATE ON viewer_daily_rollup, viewer_daily_duration_rollup, viewer_daily_node_rollup,
    viewer_daily_usage_rollup, viewer_daily_critical_rollup, viewer_daily_recontact_rollup TO flusso_app;

CREATE FUNCTION flusso_rollup_enqueue_insert() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO viewer_rollup_pending (client_id, day, log_id, executed_at)
    SELECT client_id, (executed_at AT TIME ZONE 'UTC')::date, id, executed_at FROM new_rows;
    RETURN NULL;
END
$$;

-- Dirty days: the columns the rollups read (store.logs.stats, usage: the five daily tables;
-- store.logs.recontact: resolution_status and session_key). An update of other columns only
-- (the session backfill's session_done, a no-op replace) dirties nothing.
CREATE FUNCTION flusso_rollup_enqueue_update() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO viewer_rollup_pending (client_id, day)
    SELECT DISTINCT v.client_id, (v.executed_at AT TIME ZONE 'UTC')::date
    FROM old_rows o JOIN new_rows n ON n.id = o.id
    CROSS JOIN LATERAL (VALUES (o.client_id, o.executed_at), (n.client_id, n.executed_at)) AS v(client_id, executed_at)
    WHERE (o.client_id, o.status, o.executed_at, o.overall_confidence, o.hallucination_risk,
           o.execution_time_seconds, o.input_tokens, o.output_tokens, o.cost_usd, o.node_durations,
           o.critical_path, o.usage_by_model, o.resolution_status, o.session_key)
        IS DISTINCT FROM
          (n.client_id, n.status, n.executed_at, n.overall_confidence, n.hallucination_risk,
           n.execution_time_seconds, n.input_tokens, n.output_tokens, n.cost_usd, n.node_durations,
           n.critical_path, n.usage_by_model, n.resolution_status, n.session_key);
    RETURN NULL;
END
$$;

-- No log may be written between the backfill below and the triggers.
LOCK TABLE workflow_logs IN SHARE ROW EXCLUSIVE MODE;

-- Logs stored since the last refresh of the cursor this migration retires (its created_at
-- watermark, less the 2 minutes it allowed for late commits): their (tenant, day) is recomputed
-- whole by the first refresh. Never refreshed (no watermark): every day is new to the refresh anyway.
INSERT INTO viewer_rollup_pending (client_id, day)
SELECT DISTINCT client_id, (executed_at AT TIME ZONE 'UTC')::date FROM workflow_logs
WHERE created_at >= (SELECT watermark - interval '2 minutes' FROM viewer_rollup_state WHERE id = 1);

-- viewer_rollup_state.watermark is no longer read or written; the column stays for a collector
-- of an older version still running beside a new one during an upgrade (it would fail without it).

CREATE TRIGGER rollup_pending_insert AFTER INSERT ON workflow_logs
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION flusso_rollup_enqueue_insert();
CREATE TRIGGER rollup_pending_update AFTER UPDATE ON workflow_logs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION flusso_rollup_enqueue_update();
