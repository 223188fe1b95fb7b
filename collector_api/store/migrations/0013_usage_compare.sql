-- Issue 19: usage and cost report, ticket comparison, the critical path.

-- Computed once when a log is stored (collector_api.derived), kept with the log:
--   critical_path   {"spans": [span ids, root first], "nodes": [node names on the path]}
--   usage_by_model  {"model": {"calls", "input_tokens", "output_tokens", "cost_usd"}} from trace.llm_calls
-- NULL only for logs stored before this migration, until the derived-backfill job reaches them.
ALTER TABLE workflow_logs ADD COLUMN critical_path jsonb;
ALTER TABLE workflow_logs ADD COLUMN usage_by_model jsonb;
-- The backfill finds its work here; new rows never enter this index (they are never NULL).
CREATE INDEX workflow_logs_derived_todo_idx ON workflow_logs (executed_at) WHERE critical_path IS NULL;

-- Per tenant, UTC day and model: LLM calls, tokens and cost (the usage report's by-model figures).
CREATE TABLE viewer_daily_usage_rollup (
    client_id      text NOT NULL,
    day            date NOT NULL,
    model          text NOT NULL,
    calls          numeric NOT NULL,  -- numeric: sums of tenant-reported counts must not overflow
    input_tokens   numeric NOT NULL,
    output_tokens  numeric NOT NULL,
    cost_usd       double precision NOT NULL,
    PRIMARY KEY (day, client_id, model)
);
-- Per tenant, UTC day and node: tickets whose critical path went through the node.
CREATE TABLE viewer_daily_critical_rollup (
    client_id  text NOT NULL,
    day        date NOT NULL,
    node       text NOT NULL,
    n          bigint NOT NULL,
    PRIMARY KEY (day, client_id, node)
);
GRANT SELECT, INSERT, DELETE ON viewer_daily_usage_rollup, viewer_daily_critical_rollup TO flusso_app;

ALTER TABLE viewer_daily_usage_rollup ENABLE ROW LEVEL SECURITY;
ALTER TABLE viewer_daily_usage_rollup FORCE ROW LEVEL SECURITY;
ALTER TABLE viewer_daily_critical_rollup ENABLE ROW LEVEL SECURITY;
ALTER TABLE viewer_daily_critical_rollup FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_reads ON viewer_daily_usage_rollup FOR SELECT
    USING (client_id = current_setting('flusso.tenant', true));
CREATE POLICY provider_all ON viewer_daily_usage_rollup
    USING (current_setting('flusso.scope', true) = 'provider')
    WITH CHECK (current_setting('flusso.scope', true) = 'provider');
CREATE POLICY owner_all ON viewer_daily_usage_rollup TO CURRENT_USER USING (true) WITH CHECK (true);
CREATE POLICY tenant_reads ON viewer_daily_critical_rollup FOR SELECT
    USING (client_id = current_setting('flusso.tenant', true));
CREATE POLICY provider_all ON viewer_daily_critical_rollup
    USING (current_setting('flusso.scope', true) = 'provider')
    WITH CHECK (current_setting('flusso.scope', true) = 'provider');
CREATE POLICY owner_all ON viewer_daily_critical_rollup TO CURRENT_USER USING (true) WITH CHECK (true);

-- Days rolled up before these tables existed have no rows in them: roll every day up again.
DELETE FROM viewer_rollup_days;

-- /v1/traces (0009) replaces a re-assembled log in place as the RLS role: it rewrites these too.
GRANT UPDATE (critical_path, usage_by_model) ON workflow_logs TO flusso_app;
