-- Online evaluations: evaluators (per tenant or for all), their append-only scores, the
-- outcomes that are not scores (not applicable, invalid judge answers, errors, the cost cap),
-- each judge's monthly spend, and the evaluation job's cursor. Everything a tenant owns is keyed
-- by (client_id, log_id): erasing a tenant's log deletes its rows here by that key.

CREATE TABLE evaluators (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name                  text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
    kind                  text NOT NULL CHECK (kind IN ('groundedness', 'policy', 'draft_complete', 'language',
                                                        'judge')),
    version               integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    client_id             text REFERENCES tenants (client_id),   -- NULL: every tenant
    sample_rate           double precision NOT NULL DEFAULT 1 CHECK (sample_rate > 0 AND sample_rate <= 1),
    filter_workflow       text,
    filter_status         text CHECK (filter_status IN ('SUCCESS', 'PARTIAL', 'FAILED')),
    params                jsonb NOT NULL DEFAULT '{}',           -- policy patterns, judge rubric
    monthly_cost_cap_usd  double precision CHECK (monthly_cost_cap_usd >= 0),
    enabled               boolean NOT NULL DEFAULT true,
    created_at            timestamptz NOT NULL DEFAULT now()
);

-- One score per (log, evaluator, version); never updated (the RLS role may only read it).
CREATE TABLE evaluation_scores (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id    text NOT NULL,
    log_id       bigint NOT NULL,
    executed_at  timestamptz NOT NULL,             -- the log's, for ranges and retention
    evaluator    text NOT NULL,
    version      integer NOT NULL,
    score        double precision NOT NULL CHECK (score >= 0 AND score <= 1),
    reason       text,
    cost_usd     double precision NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (client_id, log_id, evaluator, version)
);
CREATE INDEX evaluation_scores_log_idx ON evaluation_scores (log_id);
CREATE INDEX evaluation_scores_time_idx ON evaluation_scores (evaluator, executed_at) INCLUDE (client_id, score);
CREATE INDEX evaluation_scores_client_time_idx ON evaluation_scores (client_id, evaluator, executed_at)
    INCLUDE (score, log_id);

-- What an evaluation ended with when it is not a score; one row per (log, evaluator, version),
-- so an invalid answer is counted once and never retried for that version.
CREATE TABLE evaluation_outcomes (
    client_id    text NOT NULL,
    log_id       bigint NOT NULL,
    executed_at  timestamptz NOT NULL,
    evaluator    text NOT NULL,
    version      integer NOT NULL,
    outcome      text NOT NULL CHECK (outcome IN ('not_applicable', 'invalid', 'error', 'capped')),
    detail       text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, log_id, evaluator, version)
);
CREATE INDEX evaluation_outcomes_log_idx ON evaluation_outcomes (log_id);

-- A judge's spend per calendar month (UTC): the cost cap is checked against it.
CREATE TABLE evaluator_spend (
    evaluator_id  bigint NOT NULL REFERENCES evaluators (id) ON DELETE CASCADE,
    month         date NOT NULL,
    cost_usd      double precision NOT NULL DEFAULT 0,
    calls         bigint NOT NULL DEFAULT 0,
    invalid       bigint NOT NULL DEFAULT 0,
    errors        bigint NOT NULL DEFAULT 0,
    capped        bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (evaluator_id, month)
);

-- The evaluation job's cursor: the last (created_at, id) of workflow_logs it went past; it never
-- passes the start of the oldest open transaction (as the rollups' cursor).
CREATE TABLE evaluation_state (
    id         integer PRIMARY KEY CHECK (id = 1),
    watermark  timestamptz,
    last_id    bigint
);
INSERT INTO evaluation_state (id, watermark, last_id) VALUES (1, NULL, NULL);

GRANT SELECT ON evaluators, evaluation_scores, evaluation_outcomes, evaluator_spend TO flusso_app;

ALTER TABLE evaluation_scores ENABLE ROW LEVEL SECURITY;
ALTER TABLE evaluation_scores FORCE ROW LEVEL SECURITY;
ALTER TABLE evaluation_outcomes ENABLE ROW LEVEL SECURITY;
ALTER TABLE evaluation_outcomes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON evaluation_scores FOR SELECT TO flusso_app
    USING (client_id = current_setting('flusso.tenant', true));
CREATE POLICY provider_reads_all ON evaluation_scores FOR SELECT TO flusso_app
    USING (current_setting('flusso.scope', true) = 'provider');
CREATE POLICY owner_all ON evaluation_scores TO CURRENT_USER USING (true) WITH CHECK (true);
CREATE POLICY tenant_rows ON evaluation_outcomes FOR SELECT TO flusso_app
    USING (client_id = current_setting('flusso.tenant', true));
CREATE POLICY provider_reads_all ON evaluation_outcomes FOR SELECT TO flusso_app
    USING (current_setting('flusso.scope', true) = 'provider');
CREATE POLICY owner_all ON evaluation_outcomes TO CURRENT_USER USING (true) WITH CHECK (true);

-- Evaluators and their spend are the provider's (a tenant's evaluator is still set up by it).
ALTER TABLE evaluators ENABLE ROW LEVEL SECURITY;
ALTER TABLE evaluators FORCE ROW LEVEL SECURITY;
ALTER TABLE evaluator_spend ENABLE ROW LEVEL SECURITY;
ALTER TABLE evaluator_spend FORCE ROW LEVEL SECURITY;
CREATE POLICY provider_all ON evaluators USING (current_setting('flusso.scope', true) = 'provider');
-- A tenant may see which evaluators score its logs (the store reads their names only).
CREATE POLICY tenant_reads ON evaluators FOR SELECT TO flusso_app
    USING (client_id IS NULL OR client_id = current_setting('flusso.tenant', true));
CREATE POLICY owner_all ON evaluators TO CURRENT_USER USING (true) WITH CHECK (true);
CREATE POLICY provider_all ON evaluator_spend USING (current_setting('flusso.scope', true) = 'provider');
CREATE POLICY owner_all ON evaluator_spend TO CURRENT_USER USING (true) WITH CHECK (true);

-- Alert rules on an evaluator's average score: metric `eval:<evaluator name>`.
ALTER TABLE alert_rules DROP CONSTRAINT alert_rules_metric_check;
ALTER TABLE alert_rules ADD CONSTRAINT alert_rules_metric_check CHECK (
    metric IN ('failure_rate', 'partial_rate', 'avg_hallucination_risk', 'p95_execution_s', 'cost_usd', 'tickets',
               'rejections', 'recontact_rate') OR metric ~ '^eval:[a-z0-9][a-z0-9_.-]{0,63}$');
