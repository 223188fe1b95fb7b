-- Issue 18: alerts. Rules (managed by the provider), their per-tenant state, the webhook
-- deliveries with every attempt, and the rollups the evaluation reads (never raw logs).

-- A rule: metric over a window, judged per tenant (client_id NULL = every tenant, each on its own).
CREATE TABLE alert_rules (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    metric       text NOT NULL CHECK (metric IN ('failure_rate', 'partial_rate', 'avg_hallucination_risk',
                                                 'p95_execution_s', 'cost_usd', 'tickets', 'rejections')),
    op           text NOT NULL CHECK (op IN ('>', '>=', '<', '<=')),
    threshold    double precision NOT NULL,
    window_s     integer NOT NULL CHECK (window_s BETWEEN 300 AND 604800),
    client_id    text REFERENCES tenants (client_id),
    webhook_url  text NOT NULL,
    slack        boolean NOT NULL DEFAULT false,
    min_tickets  integer NOT NULL DEFAULT 0 CHECK (min_tickets >= 0),
    -- The signing secret is never stored: it is HMAC(FLUSSO_ALERT_SECRET_KEY, secret_salt), so a
    -- copy of the database alone cannot sign. The RLS role may not read this column.
    secret_salt  bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- Last known state per rule and tenant; no row = never fired. One notification per transition:
-- the transition and its delivery are written in one transaction (an outbox).
CREATE TABLE alert_states (
    rule_id     bigint NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    client_id   text NOT NULL,
    state       text NOT NULL CHECK (state IN ('firing', 'resolved')),
    value       double precision,
    changed_at  timestamptz NOT NULL,
    PRIMARY KEY (rule_id, client_id)
);

-- One notification; sent until a 2xx, with backoff, at most a few attempts. Kept 30 days.
CREATE TABLE alert_deliveries (
    id               uuid PRIMARY KEY,              -- the X-Flusso-Delivery header
    rule_id          bigint REFERENCES alert_rules (id) ON DELETE SET NULL,
    rule_name        text NOT NULL,
    client_id        text NOT NULL,
    state            text NOT NULL CHECK (state IN ('firing', 'resolved')),
    body             bytea NOT NULL,                -- exactly the bytes signed and sent
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz
);
CREATE INDEX alert_deliveries_due_idx ON alert_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX alert_deliveries_created_idx ON alert_deliveries (created_at);

CREATE TABLE alert_delivery_attempts (
    delivery_id  uuid NOT NULL REFERENCES alert_deliveries (id) ON DELETE CASCADE,
    attempt      integer NOT NULL,
    at           timestamptz NOT NULL,
    http_status  integer,
    error        text,
    duration_ms  double precision NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);

-- Per tenant, minute ('m') and hour ('h') of executed_at: the evaluation's only input besides
-- ingest_counts. Kept incrementally by the alert job (store.alert_rollups) from logs stored
-- since its cursor; minutes are kept 2 days, hours 8.
CREATE TABLE alert_rollup (
    grain      char(1) NOT NULL CHECK (grain IN ('m', 'h')),
    client_id  text NOT NULL,
    start      timestamptz NOT NULL,
    total      bigint NOT NULL,
    partial    bigint NOT NULL,
    failed     bigint NOT NULL,
    risk_sum   double precision NOT NULL,
    risk_n     bigint NOT NULL,
    cost_usd   double precision NOT NULL,
    PRIMARY KEY (grain, start, client_id)
);
-- Execution-time histogram in store.stats.FINE_EDGES buckets: p95 without raw rows.
CREATE TABLE alert_rollup_duration (
    grain      char(1) NOT NULL,
    client_id  text NOT NULL,
    start      timestamptz NOT NULL,
    bucket     integer NOT NULL,
    n          bigint NOT NULL,
    PRIMARY KEY (grain, start, client_id, bucket)
);
CREATE TABLE alert_rollup_state (
    id         integer PRIMARY KEY CHECK (id = 1),
    watermark  timestamptz
);
INSERT INTO alert_rollup_state (id, watermark) VALUES (1, NULL);

-- The viewer (provider scope, as flusso_app) reads rules (not their salt), states and the
-- delivery log, and creates and deletes rules; the job writes as the owner.
GRANT SELECT (id, name, metric, op, threshold, window_s, client_id, webhook_url, slack, min_tickets, created_at),
      INSERT, DELETE ON alert_rules TO flusso_app;
GRANT SELECT ON alert_states, alert_deliveries, alert_delivery_attempts, alert_rollup, alert_rollup_duration
    TO flusso_app;
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['alert_rules', 'alert_states', 'alert_deliveries', 'alert_delivery_attempts',
                             'alert_rollup', 'alert_rollup_duration']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        -- Alerts are the provider's: a tenant scope sees none of it.
        EXECUTE format('CREATE POLICY provider_all ON %I USING (current_setting(''flusso.scope'', true) = ''provider'')'
                       ' WITH CHECK (current_setting(''flusso.scope'', true) = ''provider'')', t);
        EXECUTE format('CREATE POLICY owner_all ON %I TO CURRENT_USER USING (true) WITH CHECK (true)', t);
    END LOOP;
END
$$;
