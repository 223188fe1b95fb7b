-- Issue 10: the maintenance jobs' bookkeeping, and row-level security for the owning role.

-- One row per maintenance job (store.jobs): when it last ran, anywhere. The job's leader lock
-- (store.locks) plus this row make a job run once per interval however many replicas loop.
CREATE TABLE job_runs (
    name         text PRIMARY KEY,
    last_run_at  timestamptz NOT NULL,
    last_error   text
);

-- The application connects as the NOSUPERUSER owner of the schema (docs/deployment.md); its
-- tenant-scoped statements run as flusso_app, which these policies do not name. FORCE ROW
-- LEVEL SECURITY would otherwise confine the owner's own cross-tenant work (operator queries,
-- backfills) to no tenant at all; an owner can lift RLS on its tables anyway, so this grants
-- nothing new. Tables added by later migrations give the owner the same policy.
DO $$
DECLARE
    rel regclass;
BEGIN
    FOR rel IN SELECT c.oid FROM pg_class c
               WHERE c.relnamespace = current_schema()::regnamespace
                 AND c.relforcerowsecurity AND c.relkind IN ('r', 'p')
    LOOP
        EXECUTE format('CREATE POLICY owner_all ON %s TO CURRENT_USER USING (true) WITH CHECK (true)', rel);
    END LOOP;
END
$$;
