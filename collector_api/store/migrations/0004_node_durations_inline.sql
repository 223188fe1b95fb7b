-- Per-node durations move into the log's own row, as a small jsonb object {"node": ms, ...}
-- (kept inline: it is far below the TOAST threshold). The overview and the rollups aggregate it
-- with jsonb_each without opening log_data. Writing 7 child rows (and 2 index entries each) per
-- log cost ~12% of the database's ingest time; see docs/benchmarks-ingest.md.
ALTER TABLE workflow_logs ADD COLUMN node_durations jsonb;

-- The backfill runs as the owner, which FORCE ROW LEVEL SECURITY would otherwise confine to no
-- tenant at all; the policy is back on before the transaction ends.
ALTER TABLE workflow_logs NO FORCE ROW LEVEL SECURITY;
ALTER TABLE workflow_node_durations NO FORCE ROW LEVEL SECURITY;
UPDATE workflow_logs w SET node_durations = n.durations
FROM (SELECT log_id, executed_at, jsonb_object_agg(node, duration_ms) AS durations
      FROM workflow_node_durations GROUP BY log_id, executed_at) n
WHERE w.id = n.log_id AND w.executed_at = n.executed_at;
ALTER TABLE workflow_logs FORCE ROW LEVEL SECURITY;

DROP TABLE workflow_node_durations;

-- The primary key (id, executed_at) already serves lookups by id: this index only cost writes.
DROP INDEX IF EXISTS workflow_logs_id_idx;
