import psycopg
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

from tests.collector.helpers import make_log, make_record, make_request


def test_protobuf_log_is_stored(client, acme_key, db_dsn):
    log = make_log()
    r = client.post("/v1/logs", content=make_request(make_record(log)).SerializeToString(),
                    headers={"Content-Type": "application/x-protobuf", "X-API-Key": acme_key})
    assert r.status_code == 200, r.text
    resp = ExportLogsServiceResponse.FromString(r.content)
    assert resp.partial_success.rejected_log_records == 0
    with psycopg.connect(db_dsn) as conn:
        row = conn.execute("SELECT client_id, ticket_id, trace_id, log_data FROM workflow_logs").fetchone()
    assert row[:3] == ("acme", "T-1", log["trace_id"])
    assert row[3]["metrics"]["react_iterations"] == 3
