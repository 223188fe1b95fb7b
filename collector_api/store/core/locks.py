"""Every PostgreSQL advisory lock id of the project, in one place so no two uses collide.

Two kinds: locks that serialize one piece of work wherever it is called from (migrations,
partition DDL, a rollup refresh), and the leader locks of the maintenance jobs
(`store.core.jobs`): a job runs only in the process that holds its lock, so of N replicas one does it.
"""
from __future__ import annotations

# Work that must not run twice at once, whoever calls it.
MIGRATIONS = 0x466C7573  # "Flus"
PARTITIONS = 0x50617274  # "Part"
ROLLUPS = 0x526F6C6C  # "Roll"
PROVISION = 0x526F6C65  # "Role": creating the roles, moving ownership
STAGING_PARTITIONS = 0x53746167  # "Stag": trace_spans partitions (store.traces.staging)
# One tenant's staging decisions (caps and quota), a transaction lock keyed (this, hashtext(client_id)).
STAGING_TENANT = 0x54726163  # "Trac"

# Leader election of the maintenance jobs (the registry: flusso_obs.jobs), one id per job.
JOB_PARTITION_UPKEEP = 0x4A6F6201
JOB_ROLLUP_REFRESH = 0x4A6F6202
JOB_DERIVED_BACKFILL = 0x4A6F6219  # critical path and usage of logs stored before 0013
JOB_SESSION_BACKFILL = 0x4A6F6220  # session keys of logs stored before 0017 (0x4A6F6220..2F: sessions)
JOB_EXCERPT_BACKFILL = 0x4A6F621A  # draft excerpts of logs stored before 0028
JOB_TRACE_ASSEMBLY = 0x4A6F6203
JOB_STAGING_UPKEEP = 0x4A6F6204
# Alerts: the evaluation + delivery job, and its minute/hour rollups.
JOB_ALERTS = 0x4A6F6212
ALERT_ROLLUPS = 0x416C7274  # "Alrt"
# Online evaluations (0x4A6F6240..0x4A6F624F reserved): the evaluation job.
JOB_EVALUATE = 0x4A6F6240
# The evaluator-verdict rollup's triggers (migration 0024, which spells it 1248813633): the first key
# of pg_advisory_xact_lock(key, bucket), one bucket per hashint8(log_id) & 1023, taken by writers
# of evaluation_scores and ticket_review_state before they read the other table.
EVAL_VERDICT_LOGS = 0x4A6F6241
# Erasure (0x4A6F6230..0x4A6F623F): a tenant's stores hold it shared (the workflow_logs trigger of
# migration 0018, as pg_advisory_xact_lock_shared(this, hashtext(client_id))); an erasure takes it
# exclusively once its tombstones are committed, so no store that missed them is still in flight.
ERASURE_TENANT = 0x4A6F6230
JOB_TENANT_RETENTION = 0x4A6F6231  # leader lock of the per-tenant retention job
JOB_ERASURE_RESUME = 0x4A6F6232  # leader lock of the job finishing erasures whose caller never retried

ALL = {name: value for name, value in globals().items() if name.isupper() and isinstance(value, int)}
