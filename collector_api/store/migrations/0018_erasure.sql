-- Erasure (GDPR Article 17) and retention per tenant, each recorded with a signed receipt.
-- See docs/privacy.md; the tables erased are listed in collector_api.store.erasure.targets.

-- API keys of scope `erase`: request erasures of their own tenant, nothing else.
ALTER TABLE api_keys DROP CONSTRAINT api_keys_scope_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_scope_check CHECK (scope IN ('ingest', 'read', 'review', 'erase'));

-- Days a tenant's logs are kept (flusso-obs tenants set --retention-days); NULL: only the global
-- `flusso-obs retention`.
ALTER TABLE tenants ADD COLUMN retention_days integer CHECK (retention_days IS NULL OR retention_days BETWEEN 1 AND 36500);

-- Every erasure and every per-tenant retention run. No personal data: what was asked is ticket
-- ids, trace ids and tokens (raw identifiers are hashed before anything is written). Append-only:
-- a row is updated while it runs (its counts, batch by batch, in the batches' transactions) and
-- frozen once finished (trigger below); nobody may delete one.
CREATE TABLE erasure_log (
    client_id    text NOT NULL,
    request_id   text NOT NULL CHECK (request_id ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$'),
    kind         text NOT NULL CHECK (kind IN ('erasure', 'retention')),
    asked        jsonb NOT NULL,                 -- {"ticket_ids": [...], "trace_ids": [...], "tokens": [...]}
    asked_sha256 text NOT NULL,                  -- of the canonical `asked`: a replayed id must ask the same
    requested_by text NOT NULL,                  -- an API key's id, or "cli", or "job"
    status       text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'done')),
    counts       jsonb NOT NULL DEFAULT '{}',    -- kind of data -> rows erased
    days         date[] NOT NULL DEFAULT '{}',   -- UTC days of the erased logs: their rollups are recomputed
    minutes      timestamptz[] NOT NULL DEFAULT '{}',  -- and their minutes within the alert rollups' reach
    matched      bigint,                         -- logs found (erasure_items written); NULL: not resolved yet
    started_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at  timestamptz,
    PRIMARY KEY (client_id, request_id)
);
CREATE INDEX erasure_log_started_idx ON erasure_log (started_at DESC);

-- The work list of a running erasure: one row per log found, deleted in the transaction that
-- erases its rows (so a crash leaves exactly the work not done yet).
CREATE TABLE erasure_items (
    client_id    text NOT NULL,
    request_id   text NOT NULL,
    item         bigint GENERATED ALWAYS AS IDENTITY,
    log_id       bigint,
    executed_at  timestamptz,
    trace_id     text NOT NULL,
    ticket_id    text,
    PRIMARY KEY (client_id, request_id, item)
);

-- What was erased stays refused: a log (or a re-assembled trace) of an erased ticket, trace or
-- person token is not stored again (checked at store time by the trigger below), so a replayed
-- export or a late span cannot bring it back. Values are ids and tokens, never raw data.
CREATE TABLE erasure_tombstones (
    client_id   text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('ticket', 'trace', 'token')),
    value       text NOT NULL,
    request_id  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, kind, value)
);

-- Append-only log: finished rows never change; no row is ever deleted.
CREATE FUNCTION flusso_erasure_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'erasure_log is append-only';
    END IF;
    IF OLD.status = 'done' OR NEW.client_id <> OLD.client_id OR NEW.request_id <> OLD.request_id
       OR NEW.asked_sha256 <> OLD.asked_sha256 OR NEW.started_at <> OLD.started_at THEN
        RAISE EXCEPTION 'erasure_log: a finished row, or what a row asked, never changes';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER erasure_log_append_only BEFORE UPDATE OR DELETE ON erasure_log
    FOR EACH ROW EXECUTE FUNCTION flusso_erasure_log_append_only();

-- A log of an erased ticket, trace or token is refused (skipped) at store time. The shared
-- advisory lock (store.core.locks.ERASURE_TENANT, per tenant) is held until the storing
-- transaction ends: an erasure takes it exclusively after recording its tombstones, so every
-- store that began before them has committed (and is found) before the erasure looks.
CREATE FUNCTION flusso_refuse_erased() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    doc text;
BEGIN
    PERFORM pg_advisory_xact_lock_shared(1248813616, hashtext(NEW.client_id));
    IF EXISTS (SELECT 1 FROM erasure_tombstones t WHERE t.client_id = NEW.client_id
               AND ((t.kind = 'ticket' AND t.value = NEW.ticket_id) OR (t.kind = 'trace' AND t.value = NEW.trace_id))) THEN
        RETURN NULL;
    END IF;
    IF EXISTS (SELECT 1 FROM erasure_tombstones t WHERE t.client_id = NEW.client_id AND t.kind = 'token') THEN
        doc := NEW.log_data::text;
        IF EXISTS (SELECT 1 FROM erasure_tombstones t WHERE t.client_id = NEW.client_id AND t.kind = 'token'
                   AND strpos(doc, t.value) > 0) THEN
            RETURN NULL;
        END IF;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER workflow_logs_refuse_erased BEFORE INSERT OR UPDATE OF log_data, ticket_id ON workflow_logs
    FOR EACH ROW EXECUTE FUNCTION flusso_refuse_erased();

-- The erasure runs as flusso_app in a transaction scoped to its tenant (row-level security), so
-- it can reach no other tenant's rows. Deleting logs and reviews is otherwise never done by that
-- role: a RESTRICTIVE policy allows it only in a transaction that declares itself an erasure.
GRANT DELETE ON workflow_logs, ticket_reviews, ticket_review_state TO flusso_app;
GRANT SELECT, INSERT, UPDATE (status, counts, days, minutes, matched, finished_at) ON erasure_log TO flusso_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON erasure_items TO flusso_app;  -- UPDATE: SELECT ... FOR UPDATE
GRANT SELECT, INSERT ON erasure_tombstones TO flusso_app;
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['workflow_logs', 'ticket_reviews', 'ticket_review_state']
    LOOP
        -- TO flusso_app binds its members too (the owner is one): the owner's own deletes pass.
        EXECUTE format('CREATE POLICY erasure_only_deletes ON %I AS RESTRICTIVE FOR DELETE TO flusso_app'
                       ' USING (current_user <> ''flusso_app'''
                       ' OR current_setting(''flusso.purpose'', true) = ''erasure'')', t);
    END LOOP;
    FOREACH t IN ARRAY ARRAY['erasure_log', 'erasure_items', 'erasure_tombstones']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_rows ON %I TO flusso_app'
                       ' USING (client_id = current_setting(''flusso.tenant'', true))'
                       ' WITH CHECK (client_id = current_setting(''flusso.tenant'', true))', t);
        EXECUTE format('CREATE POLICY owner_all ON %I TO CURRENT_USER USING (true) WITH CHECK (true)', t);
    END LOOP;
END
$$;
-- The provider's page lists every tenant's erasures (read only).
CREATE POLICY provider_reads_all ON erasure_log FOR SELECT TO flusso_app
    USING (current_setting('flusso.scope', true) = 'provider');
