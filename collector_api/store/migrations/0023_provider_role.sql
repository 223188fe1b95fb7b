-- Provider-scoped transactions run as flusso_provider, a member of flusso_app (so it has its
-- grants and its tenant policies, which match nothing for a provider), with a policy
-- USING (true) / WITH CHECK (true) beside every policy that lets the provider scope in with
-- current_setting('flusso.scope') = 'provider', for the same commands. The provider reads
-- exactly the rows it read before. What changes is the plan: PostgreSQL cannot know a setting
-- when it plans and sizes such a test at 0.5 % of the table, so a provider's joins were planned
-- for a handful of rows when they read millions (a nested loop over every review, 3 s at 22,000
-- logs). USING (true) is folded away and the estimates are the table's own.
-- python -m flusso_obs.provision (every start of `make run`, compose's db-init) creates the role
-- and the memberships; a migration run by a role that may not create it fails here, saying so.
DO $$
DECLARE
    p record;
    made integer := 0;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'flusso_provider') THEN
        BEGIN
            CREATE ROLE flusso_provider NOLOGIN NOSUPERUSER NOBYPASSRLS;
            GRANT flusso_app TO flusso_provider;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE EXCEPTION 'the role flusso_provider does not exist and % may not create it: run'
                ' python -m flusso_obs.provision with a superuser DSN first (docs/deployment.md)', current_user;
        END;
    END IF;
    FOR p IN SELECT tablename, policyname, cmd, with_check IS NOT NULL AS checks FROM pg_policies
             WHERE schemaname = 'public'
               AND qual = '(current_setting(''flusso.scope''::text, true) = ''provider''::text)'
    LOOP
        EXECUTE format('CREATE POLICY %I ON %I AS PERMISSIVE FOR %s TO flusso_provider USING (true)%s',
                       'provider_role_' || p.policyname, p.tablename, p.cmd,
                       CASE WHEN p.checks THEN ' WITH CHECK (true)' ELSE '' END);
        made := made + 1;
    END LOOP;
    IF made = 0 THEN
        RAISE EXCEPTION 'no provider policy found to mirror for flusso_provider';
    END IF;
END
$$;

-- Deleting logs and reviews stays an erasure's privilege: the restrictive policy of 0018 let any
-- role but flusso_app through (meaning the owner); it now names the provider's role too.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['workflow_logs', 'ticket_reviews', 'ticket_review_state']
    LOOP
        EXECUTE format('ALTER POLICY erasure_only_deletes ON %I'
                       ' USING (current_user NOT IN (''flusso_app'', ''flusso_provider'')'
                       ' OR current_setting(''flusso.purpose'', true) = ''erasure'')', t);
    END LOOP;
END
$$;
