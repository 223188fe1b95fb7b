"""Only the stored, redacted log reaches a judge. A ticket full of raw personal data goes through
the real bridge (a separate process, OTLP/HTTP) into the real collector and PostgreSQL; the
evaluation job then asks a fake judge on 127.0.0.1, which records every byte it receives. No
planted raw value may be among them (the bridge's tokens may)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from collector_api.evals.admin import create_evaluator
from collector_api.evals.job import EvalConfig, evaluate_new_logs
from collector_api.evals.judge import JudgeConfig
from collector_api.evals.spec import validate_evaluator
from collector_api.store.core.db import create_pool
from tests.e2e.helpers import poll_rows
from tests.evals.helpers import FakeJudge
from tests.helpers import make_key, run_async

PLANTED = {
    "email": "giulia.verdi@example.org",
    "name": "Giulia Verdi",
    "phone": "+39 347 123 4567",
    "card": "4111 1111 1111 1111",
    "iban": "IT60X0542811101000000123456",
    "secret": "sk-live-abcdefghijklmnopqrstuvwxyz123456",
}

WORKFLOW = textwrap.dedent('''
    import json, sys
    from otel_bridge import configure, workflow, record, flush
    p = json.loads(sys.argv[1])
    configure()

    @workflow("flusso_ticket")
    def handle():
        record.ticket(ticket_id="T-PII", subject=f"Refund for {p['name']}",
                      description=f"Card {p['card']}, IBAN {p['iban']}, call {p['phone']}, mail {p['email']}",
                      requester_email=p["email"], requester_name=p["name"], requester_phone=p["phone"])
        record.retrieval("text", query=f"orders of {p['email']}",
                         results=[{"id": "kb-1", "title": f"Customer {p['name']} card {p['card']}", "score": 0.9}])
        record.evidence(items=[{"source": "crm", "claim": f"{p['name']} paid with {p['card']} key {p['secret']}"}])
        record.draft(f"Dear {p['name']}, we refunded card {p['card']} (IBAN {p['iban']}). "
                     f"Questions? Call {p['phone']} or write to {p['email']}. Token {p['secret']}.")
        record.outcome(status="SUCCESS", resolution_status="resolved", overall_confidence=0.8)

    handle()
    sys.exit(0 if flush() else 1)
''')


def test_no_planted_raw_value_reaches_the_judge(live_server, db_dsn):
    import json

    key = make_key(db_dsn, "acme")
    env = {**os.environ, "ENVIRONMENT": "test", "LOG_COLLECTOR_URL": live_server.url, "LOG_COLLECTOR_API_KEY": key,
           "FLUSSO_CONTENT": "scrub"}
    out = subprocess.run([sys.executable, "-c", WORKFLOW, json.dumps(PLANTED)], capture_output=True, text=True,
                         timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    assert len(poll_rows(db_dsn, 1)) == 1

    async def judge_it(url):
        async with create_pool(db_dsn, max_size=4) as pool:
            await create_evaluator(pool, validate_evaluator(name="judge", kind="judge", cost_cap="1"))
            config = EvalConfig(judge=JudgeConfig(url=url, model="m", timeout_s=5.0))
            return await evaluate_new_logs(pool, config)

    with FakeJudge(lambda n, req: ("ok", 0.5, "fine")) as judge:
        report = run_async(judge_it(judge.url))
    assert report.scores == 1 and len(judge.raw) == 1
    sent = judge.raw[0].decode("utf-8")
    prompt = judge.prompts()[0]
    assert "we refunded card" in prompt and "kb-1" in prompt  # the draft and retrieval did go
    for kind, value in PLANTED.items():
        for form in {value, value.replace(" ", ""), json.dumps(value)[1:-1]}:
            assert form not in sent, f"raw {kind} reached the judge"
    assert "[email:" in prompt or "[name:" in prompt  # what reached it instead: the bridge's tokens
