"""Seeded mutation fuzz of both ingest endpoints: whatever a client sends, never a 5xx."""
import copy
import gzip
import json
import random

from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tests.collector.helpers import make_log, make_record, make_request

WEIRD = [None, True, 0, -1, 2**70, -2**70, 1.5, 1e308, float("nan"), "", "x" * 300, "\u0000", "\ud800", "é",
         [], {}, [1, {"a": None}], {"": 1}, "2026-13-45T99:99:99Z", "NaN"]


def mutate(rng: random.Random, node) -> None:
    if isinstance(node, dict) and node:
        key = rng.choice(list(node))
        roll = rng.random()
        if roll < 0.3:
            node[key] = copy.deepcopy(rng.choice(WEIRD))
        elif roll < 0.4:
            del node[key]
        elif roll < 0.5:
            node[rng.choice(["\u0000k", "new", "\udfff", "x" * 500])] = copy.deepcopy(rng.choice(WEIRD))
        else:
            mutate(rng, node[key])
    elif isinstance(node, list) and node:
        index = rng.randrange(len(node))
        if rng.random() < 0.5:
            node[index] = copy.deepcopy(rng.choice(WEIRD))
        else:
            mutate(rng, node[index])


def test_mutated_logs_never_get_a_5xx(client, acme_key):
    rng = random.Random(20261125)
    seen = {}
    for _ in range(250):
        log = make_log()
        for _ in range(rng.randint(1, 4)):
            mutate(rng, log)
        text = json.dumps(log)  # ensure_ascii: surrogates and NaN travel as JSON sees them
        roll = rng.random()
        if roll < 0.35:
            r = client.post("/api/v1/logs", content=text.encode(), headers={"X-API-Key": acme_key,
                                                                          "Content-Type": "application/json"})
        elif roll < 0.7:
            record = make_record(make_log(), body=AnyValue(string_value=text))
            r = client.post("/v1/logs", content=make_request(record).SerializeToString(),
                            headers={"X-API-Key": acme_key, "Content-Type": "application/x-protobuf"})
        else:
            otlp = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{
                "eventName": "flusso.workflow_log", "traceId": make_log()["trace_id"],
                "body": {"stringValue": text}}]}]}]}
            mutate(rng, otlp)
            body = json.dumps(otlp).encode()
            headers = {"X-API-Key": acme_key, "Content-Type": "application/json"}
            if rng.random() < 0.3:
                body, headers["Content-Encoding"] = gzip.compress(body)[: rng.randint(1, len(body))], "gzip"
            r = client.post("/v1/logs", content=body, headers=headers)
        assert r.status_code < 500, (r.status_code, r.text[:300], text[:300])
        seen[r.status_code] = seen.get(r.status_code, 0) + 1
    assert seen.get(200, 0) > 20 and sum(v for k, v in seen.items() if 400 <= k < 500) > 50, seen
