"""The job registry (flusso_obs.jobs): which jobs a server process runs, from its settings."""
from types import SimpleNamespace

import pytest

from collector_api.alerts.targets import AllowListError
from collector_api.store.core import locks
from collector_api.telemetry.counters import IngestCounters
from config.server import ServerSettings
from flusso_obs.jobs import server_jobs


def jobs(secret=None, **settings):
    traces = SimpleNamespace(secret=secret, prices=None)
    return server_jobs(ServerSettings(**settings), "postgresql:///x", object(), IngestCounters(), traces)


def test_the_default_jobs_each_with_its_own_lock():
    listed = jobs()
    assert [j.name for j in listed] == ["partition-upkeep", "rollup-refresh", "ingest-counters", "derived-backfill",
                                        "session-backfill", "excerpt-backfill", "evaluate", "erasure-resume",
                                        "tenant-retention", "alert-evaluate"]
    assert [j.name for j in listed if j.per_process] == ["ingest-counters"]
    leader_locks = [j.lock_id for j in listed if not j.per_process]
    assert len(set(leader_locks)) == len(leader_locks) and set(leader_locks) <= set(locks.ALL.values())


def test_settings_turn_jobs_on_and_off():
    assert "rollup-refresh" not in [j.name for j in jobs(flusso_rollup_refresh_seconds=0)]
    assert "alert-evaluate" not in [j.name for j in jobs(flusso_alert_interval_s=0)]
    # Alerts off, their rollups' queue (one row per new log, migration 0030) is still consumed.
    assert "alert-rollups" in [j.name for j in jobs(flusso_alert_interval_s=0)]
    assert "alert-rollups" not in [j.name for j in jobs()]
    assert "evaluate" not in [j.name for j in jobs(flusso_eval_interval_s=0)]
    judged = {j.name: j for j in jobs(flusso_judge_url="http://127.0.0.1:9/v1/chat/completions",
                                      flusso_judge_timeout_s=10, flusso_judge_retries=1, flusso_judge_concurrency=16)}
    # The budget, a batch of retried errors and one more batch of new logs (each 500 logs / 16 at
    # once = 32 rounds of 2 attempts of 10 s and a backoff).
    assert judged["evaluate"].deadline_s == pytest.approx(60 + 120 + 2 * 32 * (2 * 10 + 0.75))
    assert "tenant-retention" not in [j.name for j in jobs(flusso_retention_interval_s=0)]
    staged = {j.name: j for j in jobs(secret="k" * 32, flusso_trace_assembly_seconds=0.5)}
    assert staged["trace-assembly"].interval_s == 0.5 and "staging-upkeep" in staged


def test_a_bad_webhook_allow_list_stops_the_start_even_with_alerts_off():
    with pytest.raises(AllowListError):
        jobs(flusso_alert_interval_s=0, flusso_webhook_allow="10.0.0.0/33")


def test_a_bad_judge_url_stops_the_start_even_with_evaluations_off():
    from collector_api.evals.judge import JudgeConfigError

    with pytest.raises(JudgeConfigError):
        jobs(flusso_eval_interval_s=0, flusso_judge_url="http://user:pw@judge.example.com/v1")
