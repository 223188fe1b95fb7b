"""The README's client example, run as written (with the README's command line: ENVIRONMENT=
development, no PII_HASH_KEY), lands in PostgreSQL with its PII hashed; without either
variable it stops at configure() with an error naming both."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.helpers import make_key

from .helpers import poll_rows

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_client_example_ships_a_redacted_log(live_server, db_dsn, tmp_path):
    code = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)[0]
    script = tmp_path / "example.py"
    script.write_text(code)
    env = {k: v for k, v in os.environ.items() if k not in ("ENVIRONMENT", "PII_HASH_KEY")}
    env.update(LOG_COLLECTOR_URL=live_server.url, LOG_COLLECTOR_API_KEY=make_key(db_dsn, "acme"))
    assert "ENVIRONMENT=development LOG_COLLECTOR_URL=" in README.read_text()  # the README's command line

    refused = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=60)
    assert refused.returncode != 0 and "ConfigurationError" in refused.stderr
    assert "PII_HASH_KEY is not set and ENVIRONMENT is not set" in refused.stderr

    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env={**env, "ENVIRONMENT": "development"},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "delivered"
    rows = poll_rows(db_dsn, 1)
    assert len(rows) == 1
    log = rows[0][4]
    text = json.dumps(log)
    assert log["ticket_info"]["ticket_id"] == "T-1" and log["outcome"]["status"] == "SUCCESS"
    for raw in ("Ann Rossi", "ann@example.com", "Where is my order?"):
        assert raw not in text, f"{raw!r} was shipped in clear text"
    assert log["trace"]["react"]["iterations"][0]["action"] == "order_lookup"
    assert log["metrics"]["react_iterations"] == 1
