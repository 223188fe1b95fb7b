-- A tenant's review queue walks its own tickets only. workflow_logs_review_queue_idx (0011) has no
-- tenant: a client's queue (or the provider's filtered to one client) skipped every other
-- tenant's entries ordered before its own, so one tenant with many unreviewed low-confidence
-- tickets slowed every other tenant's queue (at 10M logs: 347,234 entries skipped, 392 ms for a
-- page). With the tenant first, the walk reads one page of the tenant's own entries. The 0011
-- index stays for the provider's queue over all tenants.
CREATE INDEX workflow_logs_client_review_queue_idx ON workflow_logs (
    client_id, (status = 'SUCCESS'), (COALESCE(overall_confidence, -1)), (COALESCE(hallucination_risk, -1)) DESC,
    executed_at DESC, id DESC);

-- The session list walks the range's logs newest first and folds them into sessions (store.logs.
-- sessions): with the session key in the two time indexes, that walk reads index entries only,
-- not each log's wide heap row (at 10M logs, a page whose newest 50,000 logs belong to 9 customers:
-- ~110 ms of heap visits -> ~20 ms). Rebuilt with the columns of 0002 plus session_key.
DROP INDEX workflow_logs_time_idx;
CREATE INDEX workflow_logs_time_idx ON workflow_logs (executed_at DESC, id DESC)
    INCLUDE (client_id, status, overall_confidence, execution_time_seconds, session_key);
DROP INDEX workflow_logs_client_time_idx;
CREATE INDEX workflow_logs_client_time_idx ON workflow_logs (client_id, executed_at DESC, id DESC)
    INCLUDE (status, overall_confidence, execution_time_seconds, session_key);
