-- Issue 15: POST /v1/traces. Spans are staged here until the trace-assembly job turns each
-- trace into one workflow log (store.staging writes, store.assembly reads and finalizes).

-- One row per received span. Only structural fields are in clear; the span's name, attributes
-- and events (already redacted on arrival) are one AES-GCM blob under the tenant's staging key
-- (collector_api.trace_crypto). Partitioned by hour of arrival so expiry drops whole
-- partitions (store.staging.expire_staging); a DEFAULT partition catches the rest.
CREATE TABLE trace_spans (
    client_id       text NOT NULL,
    trace_id        text NOT NULL,           -- 32 lowercase hex
    span_id         text NOT NULL,           -- 16 lowercase hex
    parent_span_id  text,
    start_ns        bigint NOT NULL,
    end_ns          bigint,
    payload         bytea NOT NULL,          -- nonce (12 bytes) || AES-GCM ciphertext
    received_at     timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE (received_at);
CREATE TABLE trace_spans_default PARTITION OF trace_spans DEFAULT;
CREATE INDEX trace_spans_trace_idx ON trace_spans (client_id, trace_id);

-- One row per trace: what the assembler needs without opening a span.
CREATE TABLE trace_state (
    client_id        text NOT NULL,
    trace_id         text NOT NULL,
    first_seen       timestamptz NOT NULL DEFAULT now(),
    last_seen        timestamptz NOT NULL DEFAULT now(),
    root_ended       boolean NOT NULL DEFAULT false,
    span_count       integer NOT NULL DEFAULT 0,    -- spans staged (replays included)
    bytes            bigint NOT NULL DEFAULT 0,     -- payload bytes staged
    dropped_spans    integer NOT NULL DEFAULT 0,    -- refused over the caps
    state            text NOT NULL DEFAULT 'open'
                     CHECK (state IN ('open', 'assembled', 'bridge')),
    assembled_spans  integer NOT NULL DEFAULT 0,    -- span_count when last assembled
    assembled_at     timestamptz,
    assemblies       integer NOT NULL DEFAULT 0,
    log_id           bigint,
    log_executed_at  timestamptz,
    PRIMARY KEY (client_id, trace_id)
);
CREATE INDEX trace_state_open_idx ON trace_state (last_seen) WHERE state = 'open';
CREATE INDEX trace_state_dirty_idx ON trace_state (last_seen)
    WHERE state = 'assembled' AND span_count > assembled_spans;
CREATE INDEX trace_state_first_seen_idx ON trace_state (first_seen);

-- The per-tenant attribute that names the ticket (flusso-obs tenants set --ticket-attribute).
ALTER TABLE tenants ADD COLUMN ticket_attribute text
    CHECK (ticket_attribute IS NULL OR length(ticket_attribute) BETWEEN 1 AND 255);

GRANT SELECT, INSERT, DELETE ON trace_spans TO flusso_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON trace_state TO flusso_app;
-- A late span re-assembles its trace: the stored log is replaced in place (same id).
GRANT UPDATE (ticket_id, status, executed_at, environment, workflow_version, resolution_status,
              overall_confidence, hallucination_risk, react_iterations, execution_time_seconds,
              input_tokens, output_tokens, cost_usd, complete, node_durations, log_data, created_at)
    ON workflow_logs TO flusso_app;

ALTER TABLE trace_spans ENABLE ROW LEVEL SECURITY;
ALTER TABLE trace_spans FORCE ROW LEVEL SECURITY;
ALTER TABLE trace_state ENABLE ROW LEVEL SECURITY;
ALTER TABLE trace_state FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON trace_spans
    USING (client_id = current_setting('flusso.tenant', true))
    WITH CHECK (client_id = current_setting('flusso.tenant', true));
CREATE POLICY tenant_rows ON trace_state
    USING (client_id = current_setting('flusso.tenant', true))
    WITH CHECK (client_id = current_setting('flusso.tenant', true));
CREATE POLICY owner_all ON trace_spans TO CURRENT_USER USING (true) WITH CHECK (true);
CREATE POLICY owner_all ON trace_state TO CURRENT_USER USING (true) WITH CHECK (true);
