-- Issue 14: ingest health. The collector's per-process counters (collector_api.counters) are
-- flushed here every few seconds by the `ingest-counters` job: one row per tenant, reason and
-- minute, upserted with additive counts. Reasons are the collector's rejection codes (the
-- `reason` label of /metrics' flusso_logs_rejected) plus `stored` and `duplicate` for accepted
-- logs. client_id '' holds requests no API key identified (missing or invalid key).
CREATE TABLE ingest_counts (
    client_id  text NOT NULL,
    minute     timestamptz NOT NULL,                 -- start of the UTC minute
    reason     text NOT NULL,
    count      bigint NOT NULL CHECK (count >= 0),
    last_at    timestamptz NOT NULL,                 -- the latest event counted in this row
    PRIMARY KEY (client_id, minute, reason)
);
CREATE INDEX ingest_counts_minute_idx ON ingest_counts (minute);

GRANT SELECT ON ingest_counts TO flusso_app;
ALTER TABLE ingest_counts ENABLE ROW LEVEL SECURITY;
ALTER TABLE ingest_counts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON ingest_counts
    USING (client_id = current_setting('flusso.tenant', true))
    WITH CHECK (client_id = current_setting('flusso.tenant', true));
CREATE POLICY provider_reads_all ON ingest_counts FOR SELECT
    USING (current_setting('flusso.scope', true) = 'provider');
CREATE POLICY owner_all ON ingest_counts TO CURRENT_USER USING (true) WITH CHECK (true);

-- When each key last authenticated an ingest request (flushed with the counters, so the hot
-- path writes nothing). The RLS role may read the key's public columns, never its hash.
ALTER TABLE api_keys ADD COLUMN last_used_at timestamptz;
GRANT SELECT (key_id, client_id, scope, created_at, revoked_at, last_used_at) ON api_keys TO flusso_app;
