-- A ticket's draft excerpt, stored beside its figures (docs/viewer.md "Sessions"): the first 240
-- characters of `trace.output.draft` when it is a string, '' when the log has no draft. Derived
-- at ingest (collector_api.contract.derived.draft_excerpt), so a session's timeline reads heap
-- rows only: reading it from `log_data` detoasted each ticket's whole document (2.4 KB
-- compressed, 3-4 random reads when cold) for 240 characters of it.
--
-- NULL only for logs stored before this migration (adding a column without a default rewrites
-- nothing): the excerpt-backfill job's work list, which the partial index holds. Readers fall
-- back to the document for them until the job reaches them.
ALTER TABLE workflow_logs ADD COLUMN IF NOT EXISTS draft_excerpt text;
-- Tenant first: the backfill works one tenant per batch (store.logs.batched), so a batch reads
-- its own tenant's entries only, not every other tenant's older logs before them.
CREATE INDEX IF NOT EXISTS workflow_logs_excerpt_todo_idx ON workflow_logs (client_id, executed_at) WHERE draft_excerpt IS NULL;

-- /v1/traces replaces a re-assembled log in place as the RLS role (0009): it rewrites the excerpt too.
GRANT UPDATE (draft_excerpt) ON workflow_logs TO flusso_app;
