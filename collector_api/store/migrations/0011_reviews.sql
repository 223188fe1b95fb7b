-- Issue 17: human review of tickets, and the `review` API key scope.

-- Every review ever recorded (append-only: flusso_app may INSERT and SELECT, never UPDATE or
-- DELETE). No foreign key to the partitioned workflow_logs: a review names its log by
-- (log_id, executed_at) and follows the logs' retention (store.partitions deletes the reviews
-- of the months it drops). Notes and corrected drafts are stored already scrubbed by the
-- bridge's free-text detectors (store.reviews).
CREATE TABLE ticket_reviews (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id        text NOT NULL,
    log_id           bigint NOT NULL,
    executed_at      timestamptz NOT NULL,          -- the log's, for retention by month
    verdict          text NOT NULL CHECK (verdict IN ('correct', 'needs_work', 'incorrect')),
    flags            text[] NOT NULL DEFAULT '{}',
    note             text,
    corrected_draft  text,
    author           text NOT NULL,                 -- a user's email, or an API key's id
    author_kind      text NOT NULL CHECK (author_kind IN ('user', 'api_key')),
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ticket_reviews_log_idx ON ticket_reviews (log_id, id DESC);
CREATE INDEX ticket_reviews_time_idx ON ticket_reviews (executed_at);

-- One row per reviewed ticket: its latest review (the ticket's verdict), the review count and
-- the log's confidence, risk and status (copied: a stored log never changes). Written in the
-- transaction of each review; the queue, the search filters, the calibration and the export
-- read it instead of picking the latest of every ticket's reviews.
CREATE TABLE ticket_review_state (
    log_id              bigint PRIMARY KEY,
    client_id           text NOT NULL,
    executed_at         timestamptz NOT NULL,
    status              text NOT NULL,
    overall_confidence  double precision,
    hallucination_risk  double precision,
    verdict             text NOT NULL,
    flags               text[] NOT NULL,
    corrected_draft     text,
    review_count        integer NOT NULL,
    last_review_id      bigint NOT NULL,
    last_review_at      timestamptz NOT NULL
);
CREATE INDEX ticket_review_state_client_time_idx ON ticket_review_state (client_id, executed_at)
    INCLUDE (verdict, overall_confidence, hallucination_risk);
CREATE INDEX ticket_review_state_time_idx ON ticket_review_state (executed_at, log_id)
    INCLUDE (client_id, verdict, overall_confidence, hallucination_risk);
-- Searches by verdict or flag walk these in (executed_at, log_id) order (store.reads._PICKS).
CREATE INDEX ticket_review_state_verdict_idx ON ticket_review_state (verdict, executed_at DESC, log_id DESC);

-- The review queue's order: FAILED and PARTIAL first, then lowest confidence, then highest
-- hallucination risk, newest first. An index walk in this order stops after one page.
CREATE INDEX workflow_logs_review_queue_idx ON workflow_logs (
    (status = 'SUCCESS'), (COALESCE(overall_confidence, -1)), (COALESCE(hallucination_risk, -1)) DESC,
    executed_at DESC, id DESC);

GRANT SELECT, INSERT ON ticket_reviews TO flusso_app;
GRANT SELECT, INSERT, UPDATE ON ticket_review_state TO flusso_app;

ALTER TABLE ticket_reviews ENABLE ROW LEVEL SECURITY;
ALTER TABLE ticket_reviews FORCE ROW LEVEL SECURITY;
ALTER TABLE ticket_review_state ENABLE ROW LEVEL SECURITY;
ALTER TABLE ticket_review_state FORCE ROW LEVEL SECURITY;

-- A client writes and reads its own tenant's reviews; a provider reads every tenant's and
-- writes a tenant's review in a transaction scoped to that tenant (store.reviews).
CREATE POLICY tenant_rows ON ticket_reviews TO flusso_app
    USING (client_id = current_setting('flusso.tenant', true))
    WITH CHECK (client_id = current_setting('flusso.tenant', true));
CREATE POLICY provider_reads_all ON ticket_reviews FOR SELECT TO flusso_app
    USING (current_setting('flusso.scope', true) = 'provider');
CREATE POLICY owner_all ON ticket_reviews TO CURRENT_USER USING (true) WITH CHECK (true);
CREATE POLICY tenant_rows ON ticket_review_state TO flusso_app
    USING (client_id = current_setting('flusso.tenant', true))
    WITH CHECK (client_id = current_setting('flusso.tenant', true));
CREATE POLICY provider_reads_all ON ticket_review_state FOR SELECT TO flusso_app
    USING (current_setting('flusso.scope', true) = 'provider');
CREATE POLICY owner_all ON ticket_review_state TO CURRENT_USER USING (true) WITH CHECK (true);

-- API keys of scope `review`: read their tenant and record reviews.
ALTER TABLE api_keys DROP CONSTRAINT api_keys_scope_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_scope_check CHECK (scope IN ('ingest', 'read', 'review'));
