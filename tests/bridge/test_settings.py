import pytest

from config.bridge import BridgeSettings
from otel_bridge.shipping import logs_url_from_base, parse_headers, resolve_endpoint, resolve_headers


def s(**kw):
    return BridgeSettings(_env_file=None, **kw)


@pytest.mark.parametrize("given,expected", [
    ("http://c:8000", "http://c:8000/v1/logs"),
    ("http://c:8000/", "http://c:8000/v1/logs"),
    ("http://c:8000/v1/logs", "http://c:8000/v1/logs"),
    ("http://c:8000/api/v1/logs", "http://c:8000/v1/logs"),
    ("https://c.example/prefix/api/v1/logs/", "https://c.example/prefix/v1/logs"),
    ("https://c.example/prefix", "https://c.example/prefix/v1/logs"),
])
def test_base_urls(given, expected):
    assert logs_url_from_base(given) == expected


def test_endpoint_precedence():
    full = s(log_collector_url="http://seed:1/api/v1/logs", otel_exporter_otlp_endpoint="http://otel:2",
             otel_exporter_otlp_logs_endpoint="http://logs:3/custom")
    assert resolve_endpoint("http://explicit:9", full).url == "http://explicit:9/v1/logs"
    assert resolve_endpoint(None, full).url == "http://logs:3/custom"  # used as is, per the OTel spec
    assert resolve_endpoint(None, s(otel_exporter_otlp_endpoint="http://otel:2/")).url == "http://otel:2/v1/logs"
    assert resolve_endpoint(None, s(log_collector_url="http://seed:1/api/v1/logs")).url == "http://seed:1/v1/logs"
    assert resolve_endpoint(None, s()).url is None


def test_env_names_are_the_seeds(monkeypatch):
    monkeypatch.setenv("CLIENT_ID", "acme")
    monkeypatch.setenv("LOG_COLLECTOR_URL", "http://seed:1")
    monkeypatch.setenv("LOG_COLLECTOR_API_KEY", "key-1")
    monkeypatch.setenv("ENVIRONMENT", "staging")
    monkeypatch.setenv("WORKFLOW_VERSION", "2.3.0")
    monkeypatch.setenv("PII_HASH_KEY", "pk")
    monkeypatch.setenv("FLUSSO_MAX_OPEN_TRACES", "7")
    monkeypatch.setenv("SOMETHING_ELSE", "ignored")
    st = BridgeSettings(_env_file=None)
    assert (st.client_id, st.log_collector_url, st.log_collector_api_key.get_secret_value(), st.environment,
            st.workflow_version, st.pii_hash_key.get_secret_value(), st.max_open_traces) == (
        "acme", "http://seed:1", "key-1", "staging", "2.3.0", "pk", 7)


def test_dotenv_file_is_read(tmp_path):
    env = tmp_path / ".env"
    env.write_text("LOG_COLLECTOR_URL=http://dotenv:5\nCLIENT_ID=fromfile\nUNKNOWN=1\n")
    st = BridgeSettings(_env_file=str(env))
    assert st.log_collector_url == "http://dotenv:5" and st.client_id == "fromfile"


def test_headers_and_key():
    assert parse_headers("a=1, X-Api-Key=k%3D1 ,bad") == {"a": "1", "x-api-key": "k=1"}
    assert resolve_headers(None, s(otel_exporter_otlp_headers="x-api-key=from-otel")) == {"x-api-key": "from-otel"}
    assert resolve_headers(None, s(otel_exporter_otlp_headers="x-api-key=o", log_collector_api_key="seed")) == {
        "x-api-key": "seed"}
    assert resolve_headers("explicit", s(log_collector_api_key="seed"))["x-api-key"] == "explicit"
