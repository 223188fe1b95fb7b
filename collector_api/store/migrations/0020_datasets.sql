-- Datasets of production tickets and the experiments run on them (docs/experiments.md).

-- A dataset: a named, per-tenant set of COPIED tickets (dataset_items). `source` says how it was
-- made ('search', 'queue', 'ids') and `source_query` with what (the search's query string, or
-- the number of ids asked for).
CREATE TABLE datasets (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id     text NOT NULL,
    name          text NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
    source        text NOT NULL CHECK (source IN ('search', 'queue', 'ids')),
    source_query  text NOT NULL DEFAULT '',
    item_count    integer NOT NULL DEFAULT 0,
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (client_id, name)
);

-- One copied ticket: its redacted input as stored (the log's trace.ticket section, the
-- customer's messages included), the expected output (the latest review's corrected draft, else
-- the stored draft), the verdict and flags of its latest review, and where it came from
-- (log_id, ticket_id, executed_at) so that erasing a ticket can delete its copies:
--   DELETE FROM dataset_items WHERE client_id = $1 AND (log_id = ANY($2) OR ticket_id = ANY($3))
-- (dataset_items_source_idx, dataset_items_ticket_idx). No foreign key to the partitioned logs:
-- an item outlives its log's retention, as a copy.
CREATE TABLE dataset_items (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id        text NOT NULL,
    dataset_id       bigint NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    log_id           bigint NOT NULL,
    ticket_id        text NOT NULL,
    executed_at      timestamptz NOT NULL,
    status           text NOT NULL,
    input            jsonb NOT NULL,
    expected_output  text,
    expected_source  text NOT NULL CHECK (expected_source IN ('corrected', 'draft', 'none')),
    verdict          text,
    flags            text[] NOT NULL DEFAULT '{}'
);
CREATE INDEX dataset_items_page_idx ON dataset_items (dataset_id, id);
CREATE INDEX dataset_items_source_idx ON dataset_items (client_id, log_id);
CREATE INDEX dataset_items_ticket_idx ON dataset_items (client_id, ticket_id);

-- An experiment: born with its first log tagged with its id (collector_api.contract.prepare reads
-- identification.experiment; store.logs.writes registers it in the logs' transaction).
CREATE TABLE experiments (
    client_id     text NOT NULL,
    id            text NOT NULL CHECK (id ~ '^[0-9a-f]{32}$'),
    name          text NOT NULL,
    dataset_id    bigint,
    dataset_name  text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, id)
);
CREATE INDEX experiments_dataset_idx ON experiments (client_id, dataset_id, created_at DESC);
CREATE INDEX experiments_time_idx ON experiments (client_id, created_at DESC);

-- The logs of experiment runs: promoted tags (NULL for production logs, which this partial
-- index never holds).
ALTER TABLE workflow_logs ADD COLUMN experiment_id text;
ALTER TABLE workflow_logs ADD COLUMN dataset_item_id bigint;
-- The trace-assembly job replaces a re-assembled log in place, tags included (store.traces.assembly).
GRANT UPDATE (experiment_id, dataset_item_id) ON workflow_logs TO flusso_app;
-- In the order of "the latest run of each item" and INCLUDing what the totals and the comparison
-- read: those are index-only scans with no sort (store.datasets.reads).
CREATE INDEX workflow_logs_experiment_idx ON workflow_logs
    (client_id, experiment_id, dataset_item_id, executed_at DESC, id DESC)
    INCLUDE (status, cost_usd, execution_time_seconds) WHERE experiment_id IS NOT NULL;

GRANT SELECT, INSERT, UPDATE, DELETE ON datasets, dataset_items TO flusso_app;
GRANT SELECT, INSERT ON experiments TO flusso_app;

ALTER TABLE datasets ENABLE ROW LEVEL SECURITY;
ALTER TABLE datasets FORCE ROW LEVEL SECURITY;
ALTER TABLE dataset_items ENABLE ROW LEVEL SECURITY;
ALTER TABLE dataset_items FORCE ROW LEVEL SECURITY;
ALTER TABLE experiments ENABLE ROW LEVEL SECURITY;
ALTER TABLE experiments FORCE ROW LEVEL SECURITY;

-- A client reads and writes its own tenant's rows; a provider reads every tenant's and writes a
-- tenant's rows in a transaction scoped to that tenant (store.datasets).
CREATE POLICY tenant_rows ON datasets TO flusso_app
    USING (client_id = current_setting('flusso.tenant', true))
    WITH CHECK (client_id = current_setting('flusso.tenant', true));
CREATE POLICY provider_reads_all ON datasets FOR SELECT TO flusso_app
    USING (current_setting('flusso.scope', true) = 'provider');
CREATE POLICY owner_all ON datasets TO CURRENT_USER USING (true) WITH CHECK (true);
CREATE POLICY tenant_rows ON dataset_items TO flusso_app
    USING (client_id = current_setting('flusso.tenant', true))
    WITH CHECK (client_id = current_setting('flusso.tenant', true));
CREATE POLICY provider_reads_all ON dataset_items FOR SELECT TO flusso_app
    USING (current_setting('flusso.scope', true) = 'provider');
CREATE POLICY owner_all ON dataset_items TO CURRENT_USER USING (true) WITH CHECK (true);
CREATE POLICY tenant_rows ON experiments TO flusso_app
    USING (client_id = current_setting('flusso.tenant', true))
    WITH CHECK (client_id = current_setting('flusso.tenant', true));
CREATE POLICY provider_reads_all ON experiments FOR SELECT TO flusso_app
    USING (current_setting('flusso.scope', true) = 'provider');
CREATE POLICY owner_all ON experiments TO CURRENT_USER USING (true) WITH CHECK (true);
