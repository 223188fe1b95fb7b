"""`flusso-obs evals` (a real subprocess, real PostgreSQL): create with field-named errors, list
with the judge's spend, rerun a range under a new version against a fake judge on 127.0.0.1."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.cli.helpers import cli
from tests.evals.helpers import FakeJudge, build_log, insert_log, score_rows


def test_create_list_and_errors(db_dsn, tmp_path):
    env = {"FLUSSO_DATA_DIR": str(tmp_path)}
    insert_log(db_dsn, "acme", build_log())
    made = cli("evals", "create", "--name", "no-promises", "--kind", "policy", "--phrase", "guarantee * refund",
               "--phrase", "legal action", "--client", "acme", "--status", "success", dsn=db_dsn, env=env)
    assert made.returncode == 0, made.stderr
    assert "created evaluator 'no-promises' (policy, version 1) for acme" in made.stdout
    judge = cli("evals", "create", "--name", "judge", "--kind", "judge", dsn=db_dsn, env=env)
    assert judge.returncode == 2 and "--cost-cap: cost_cap: a judge needs a monthly cost cap" in judge.stderr
    rubric = tmp_path / "rubric.txt"
    rubric.write_text("Grade {{draft}} against {{evidence}}")
    judge = cli("evals", "create", "--name", "judge", "--kind", "judge", "--cost-cap", "20", "--sample", "0.5",
                "--rubric-file", str(rubric), dsn=db_dsn, env=env)
    assert judge.returncode == 0 and "FLUSSO_JUDGE_URL is unset" in judge.stderr
    for args, message in [(["--name", "X Y", "--kind", "policy"], "--name:"),
                          (["--name", "x", "--kind", "regex"], "--kind:"),
                          (["--name", "x", "--kind", "policy", "--phrase", "a" * 300], "--patterns:"),
                          (["--name", "no-promises", "--kind", "language"], "exists")]:
        bad = cli("evals", "create", *args, dsn=db_dsn, env=env)
        assert bad.returncode == 2 and message in bad.stderr, (args, bad.stderr)
    listed = cli("evals", "list", dsn=db_dsn, env=env)
    assert listed.returncode == 0
    lines = {line.split()[0]: line for line in listed.stdout.splitlines()[1:]}
    assert "SUCCESS" in lines["no-promises"] and "acme" in lines["no-promises"]
    assert "20.00" in lines["judge"] and "0.5" in lines["judge"]


def test_rerun_a_range_with_a_new_version(db_dsn, tmp_path):
    now = datetime.now(UTC)
    inside = insert_log(db_dsn, "acme", build_log(), at=now - timedelta(days=2), ticket="in")
    insert_log(db_dsn, "acme", build_log(), at=now - timedelta(days=20), ticket="out")
    with FakeJudge(lambda n, req: ("ok", 0.25, "thin")) as judge:
        env = {"FLUSSO_DATA_DIR": str(tmp_path), "FLUSSO_JUDGE_URL": judge.url, "FLUSSO_JUDGE_API_KEY": "k" * 40}
        assert cli("evals", "create", "--name", "judge", "--kind", "judge", "--cost-cap", "5", dsn=db_dsn,
                   env=env).returncode == 0
        since, until = (now - timedelta(days=7)).date().isoformat(), now.isoformat()
        done = cli("evals", "rerun", "--evaluator", "judge", "--since", since, "--until", until, dsn=db_dsn, env=env)
        assert done.returncode == 0, done.stderr
        assert "judge version 2: 1 log(s) looked at, 1 score(s) stored" in done.stdout
        same = cli("evals", "rerun", "--evaluator", "judge", "--since", since, "--until", until, "--same-version",
                   dsn=db_dsn, env=env)
        assert "judge version 2: 1 log(s) looked at, 0 score(s) stored" in same.stdout
        assert len(judge.requests) == 1
    assert [(r[1], r[3], r[4]) for r in score_rows(db_dsn)] == [(inside, 2, 0.25)]
    for args, message in [(["--evaluator", "ghost"], "no evaluator 'ghost'"),
                          (["--evaluator", "judge", "--since", "yesterday"], "--since: expected an ISO date")]:
        full = ["--since", since, "--until", until, *args] if "--since" not in args else [*args, "--until", until]
        bad = cli("evals", "rerun", *full, dsn=db_dsn, env={"FLUSSO_DATA_DIR": str(tmp_path)})
        assert bad.returncode == 2 and message in bad.stderr, bad.stderr
    no_judge = cli("evals", "rerun", "--evaluator", "judge", "--since", since, "--until", until, dsn=db_dsn,
                   env={"FLUSSO_DATA_DIR": str(tmp_path)})
    assert no_judge.returncode == 2 and "needs FLUSSO_JUDGE_URL" in no_judge.stderr


def test_disable_enable_delete_with_the_client_guard(db_dsn, tmp_path):
    env = {"FLUSSO_DATA_DIR": str(tmp_path)}
    insert_log(db_dsn, "acme", build_log())
    for name, client in (("grounded", None), ("acme-lang", "acme")):
        made = cli("evals", "create", "--name", name, "--kind", "language", *(["--client", client] if client else []),
                   dsn=db_dsn, env=env)
        assert made.returncode == 0, made.stderr
    off = cli("evals", "disable", "grounded", dsn=db_dsn, env=env)
    assert off.returncode == 0 and "disabled evaluator 'grounded'" in off.stdout
    assert "(disabled)" in cli("evals", "list", dsn=db_dsn, env=env).stdout
    on = cli("evals", "enable", "grounded", dsn=db_dsn, env=env)
    assert on.returncode == 0 and "(disabled)" not in cli("evals", "list", dsn=db_dsn, env=env).stdout
    wrong = cli("evals", "delete", "acme-lang", "--client", "globex", dsn=db_dsn, env=env)
    assert wrong.returncode == 2 and "--client: client: evaluator 'acme-lang' is tenant 'acme'" in wrong.stderr
    shared = cli("evals", "disable", "grounded", "--client", "acme", dsn=db_dsn, env=env)
    assert shared.returncode == 2 and "is for every tenant" in shared.stderr
    gone = cli("evals", "delete", "acme-lang", "--client", "acme", dsn=db_dsn, env=env)
    assert gone.returncode == 0 and "its scores stay" in gone.stdout
    listed = cli("evals", "list", dsn=db_dsn, env=env).stdout
    assert "acme-lang" not in listed and "grounded" in listed
    for args in (["enable", "acme-lang"], ["delete", "nobody"], ["disable", "Bad Name!"]):
        bad = cli("evals", *args, dsn=db_dsn, env=env)
        assert bad.returncode == 2 and "NAME: name: no evaluator" in bad.stderr, (args, bad.stderr)
    rerun = cli("evals", "rerun", "--evaluator", "acme-lang", "--since", "2026-01-01", "--until", "2026-02-01",
                dsn=db_dsn, env=env)
    assert rerun.returncode == 2 and "no evaluator 'acme-lang'" in rerun.stderr
