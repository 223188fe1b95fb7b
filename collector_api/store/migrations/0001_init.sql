-- Tenants, keys, users and the partitioned workflow log store.

CREATE TABLE tenants (
    client_id   text PRIMARY KEY CHECK (client_id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    key_id       text PRIMARY KEY,                 -- public handle, shown by `keys list`
    client_id    text NOT NULL REFERENCES tenants (client_id),
    key_hash     bytea NOT NULL UNIQUE,            -- sha256 of the secret; the secret is never stored
    scope        text NOT NULL CHECK (scope IN ('ingest', 'read')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);

CREATE TABLE users (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email          text NOT NULL UNIQUE CHECK (email = lower(email)),
    password_hash  text NOT NULL,                  -- argon2id
    role           text NOT NULL CHECK (role IN ('provider', 'client')),
    client_id      text REFERENCES tenants (client_id),
    created_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (role = 'provider' OR client_id IS NOT NULL)
);

CREATE SEQUENCE workflow_logs_id_seq AS bigint;

-- One row per ticket. Partitioned by month on executed_at; partitions are created ahead of
-- time by the application (store.partitions) and a DEFAULT partition catches the rest.
CREATE TABLE workflow_logs (
    id                      bigint NOT NULL DEFAULT nextval('workflow_logs_id_seq'),
    client_id               text NOT NULL,
    ticket_id               text NOT NULL,
    status                  text NOT NULL,
    executed_at             timestamptz NOT NULL,
    trace_id                text NOT NULL,
    environment             text,
    workflow_version        text,
    resolution_status       text,
    overall_confidence      double precision,
    hallucination_risk      double precision,
    react_iterations        integer,
    execution_time_seconds  double precision,
    input_tokens            bigint,
    output_tokens           bigint,
    cost_usd                double precision,
    complete                boolean NOT NULL DEFAULT true,
    log_data                jsonb NOT NULL,
    created_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, executed_at),
    UNIQUE (client_id, trace_id, executed_at)
) PARTITION BY RANGE (executed_at);
ALTER SEQUENCE workflow_logs_id_seq OWNED BY workflow_logs.id;

CREATE TABLE workflow_logs_default PARTITION OF workflow_logs DEFAULT;

CREATE INDEX workflow_logs_id_idx ON workflow_logs (id);
CREATE INDEX workflow_logs_time_idx ON workflow_logs (executed_at DESC, id DESC);
CREATE INDEX workflow_logs_client_time_idx ON workflow_logs (client_id, executed_at DESC, id DESC);
CREATE INDEX workflow_logs_client_ticket_idx ON workflow_logs (client_id, ticket_id);
CREATE INDEX workflow_logs_status_time_idx ON workflow_logs (status, executed_at DESC);

-- Per-node durations, so the overview aggregates them without opening documents.
CREATE TABLE workflow_node_durations (
    log_id       bigint NOT NULL,
    client_id    text NOT NULL,
    executed_at  timestamptz NOT NULL,
    node         text NOT NULL,
    duration_ms  double precision NOT NULL
) PARTITION BY RANGE (executed_at);
CREATE TABLE workflow_node_durations_default PARTITION OF workflow_node_durations DEFAULT;
CREATE INDEX workflow_node_durations_time_idx ON workflow_node_durations (executed_at, client_id);
CREATE INDEX workflow_node_durations_log_idx ON workflow_node_durations (log_id);

-- Row-level security, as defense in depth behind the tenant filter in every query.
-- The application runs its tenant-scoped statements as flusso_app (no BYPASSRLS) and sets
-- flusso.tenant / flusso.scope per transaction; see store.db.scoped_transaction.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'flusso_app') THEN
        CREATE ROLE flusso_app NOLOGIN NOSUPERUSER NOBYPASSRLS;
    END IF;
END
$$;
GRANT USAGE ON SCHEMA public TO flusso_app;
GRANT SELECT, INSERT ON workflow_logs, workflow_node_durations TO flusso_app;
GRANT USAGE ON SEQUENCE workflow_logs_id_seq TO flusso_app;
GRANT SELECT ON tenants TO flusso_app;

ALTER TABLE workflow_logs ENABLE ROW LEVEL SECURITY;
ALTER TABLE workflow_logs FORCE ROW LEVEL SECURITY;
ALTER TABLE workflow_node_durations ENABLE ROW LEVEL SECURITY;
ALTER TABLE workflow_node_durations FORCE ROW LEVEL SECURITY;

CREATE POLICY tenant_rows ON workflow_logs
    USING (client_id = current_setting('flusso.tenant', true))
    WITH CHECK (client_id = current_setting('flusso.tenant', true));
CREATE POLICY provider_reads_all ON workflow_logs FOR SELECT
    USING (current_setting('flusso.scope', true) = 'provider');
CREATE POLICY tenant_rows ON workflow_node_durations
    USING (client_id = current_setting('flusso.tenant', true))
    WITH CHECK (client_id = current_setting('flusso.tenant', true));
CREATE POLICY provider_reads_all ON workflow_node_durations FOR SELECT
    USING (current_setting('flusso.scope', true) = 'provider');
