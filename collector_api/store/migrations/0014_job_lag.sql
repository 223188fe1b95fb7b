-- Jobs in isolation: each job's last SUCCESS, beside its last run (job_runs, 0005), so every
-- process can show each job's lag (now - last success) on /metrics, /ingest and /readyz.
ALTER TABLE job_runs ADD COLUMN last_ok_at timestamptz;
UPDATE job_runs SET last_ok_at = last_run_at WHERE last_error IS NULL;
