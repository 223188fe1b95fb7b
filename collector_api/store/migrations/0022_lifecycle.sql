-- Evaluators can be disabled, enabled and deleted (flusso-obs evals disable|enable|delete, the
-- provider's evaluators page); judge failures are retried by later runs of the evaluation job;
-- a dataset deleted after experiments were run on it stays as their snapshot.

-- A deleted evaluator is a tombstone: it no longer runs nor is listed, its append-only scores
-- stay (shown under its name, marked deleted), and its name is not given to a new evaluator
-- (whose version 1 would collide with the old version 1's scores).
ALTER TABLE evaluators ADD COLUMN deleted_at timestamptz;

-- An `error` outcome (the judge endpoint failed after the in-call retries) is tried again by the
-- evaluation job from next_attempt_at on (backoff doubling per attempt), until `attempts` reaches
-- FLUSSO_EVAL_RETRY_ATTEMPTS: then next_attempt_at is NULL and the error stays, with its reason.
ALTER TABLE evaluation_outcomes ADD COLUMN attempts integer NOT NULL DEFAULT 1 CHECK (attempts >= 1);
ALTER TABLE evaluation_outcomes ADD COLUMN next_attempt_at timestamptz;
UPDATE evaluation_outcomes SET next_attempt_at = now() WHERE outcome = 'error';
CREATE INDEX evaluation_outcomes_retry_idx ON evaluation_outcomes (next_attempt_at)
    WHERE outcome = 'error' AND next_attempt_at IS NOT NULL;

-- Deleting a dataset that experiments were run on keeps its items as their snapshot: the dataset
-- is marked deleted (it leaves the lists, its name is free again, its items can no longer be
-- fetched for a new run) and its experiments stay viewable, marked "dataset deleted". A dataset
-- without experiments is deleted outright with its items (store.datasets.writes.delete_dataset).
ALTER TABLE datasets ADD COLUMN deleted_at timestamptz;
ALTER TABLE datasets DROP CONSTRAINT datasets_client_id_name_key;
CREATE UNIQUE INDEX datasets_live_name_idx ON datasets (client_id, name) WHERE deleted_at IS NULL;
