-- Evaluators can be disabled, enabled and deleted (flusso-obs evals disable|enable|delete, the
-- provider's evaluators page); judge failures are retried by later runs of the evaluation job.

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
