-- Customer sessions and the recontact rate (docs/viewer.md "Sessions").

-- The session a log belongs to: a one-way key derived at ingest (collector_api.contract.sessions)
-- from the log's conversation id, else its requester token; never a raw value. NULL: the log
-- names neither (or was stored before this migration and the session-backfill job has not
-- reached it yet; `session_done` tells the two apart).
ALTER TABLE workflow_logs ADD COLUMN session_key text;
-- NULL only for logs stored before this migration (adding a column without a default rewrites
-- nothing): the session-backfill job's work list. New rows get true.
ALTER TABLE workflow_logs ADD COLUMN session_done boolean;
ALTER TABLE workflow_logs ALTER COLUMN session_done SET DEFAULT true;
CREATE INDEX workflow_logs_session_todo_idx ON workflow_logs (executed_at) WHERE session_done IS NULL;
-- A session's tickets in time order (keyset pages), the recontact probe, the ticket page's count;
-- covering what a session's summary sums (index-only: a regular customer's hundreds of tickets
-- are not fetched row by row from the wide heap).
CREATE INDEX workflow_logs_session_idx ON workflow_logs (client_id, session_key, executed_at, id)
    INCLUDE (status, resolution_status, cost_usd) WHERE session_key IS NOT NULL;

-- /v1/traces replaces a re-assembled log in place as the RLS role (0009): it rewrites the key too.
GRANT UPDATE (session_key) ON workflow_logs TO flusso_app;

-- Per tenant and UTC day: tickets resolved that day with a session key, and how many of them
-- were followed by another ticket of the same session within `window_days` days.
CREATE TABLE viewer_daily_recontact_rollup (
    client_id    text NOT NULL,
    day          date NOT NULL,
    resolved     bigint NOT NULL,
    recontacted  bigint NOT NULL,
    PRIMARY KEY (day, client_id)
);
-- The recontact window the rollup was computed with (FLUSSO_RECONTACT_DAYS); another setting
-- makes the next refresh recompute every day, and readers aggregate live meanwhile.
ALTER TABLE viewer_rollup_state ADD COLUMN recontact_days integer;

GRANT SELECT, INSERT, DELETE ON viewer_daily_recontact_rollup TO flusso_app;
ALTER TABLE viewer_daily_recontact_rollup ENABLE ROW LEVEL SECURITY;
ALTER TABLE viewer_daily_recontact_rollup FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_reads ON viewer_daily_recontact_rollup FOR SELECT
    USING (client_id = current_setting('flusso.tenant', true));
CREATE POLICY provider_all ON viewer_daily_recontact_rollup
    USING (current_setting('flusso.scope', true) = 'provider')
    WITH CHECK (current_setting('flusso.scope', true) = 'provider');
CREATE POLICY owner_all ON viewer_daily_recontact_rollup TO CURRENT_USER USING (true) WITH CHECK (true);

-- The alert metric recontact_rate.
ALTER TABLE alert_rules DROP CONSTRAINT alert_rules_metric_check;
ALTER TABLE alert_rules ADD CONSTRAINT alert_rules_metric_check CHECK (metric IN ('failure_rate', 'partial_rate',
    'avg_hallucination_risk', 'p95_execution_s', 'cost_usd', 'tickets', 'rejections', 'recontact_rate'));
