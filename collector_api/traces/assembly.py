"""The trace-assembly job: staged spans -> one workflow log per trace, with the bridge's builder.

A trace is due when its root ended and no span arrived for the quiet period, or at its maximum
age (store.assembly.due_traces). Its spans are opened with the tenant's staging key, replays
dropped (one span per span id), the person values seen anywhere in the trace replaced wherever
they appear, the GenAI conventions mapped (trace_conventions) and the log built with
`otel_bridge.assemble.build_workflow_log` (the client's builder), then checked like any
/v1/logs document (`ingest.prepare_row`). Re-running it gives the same log: idempotent.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson
from psycopg_pool import AsyncConnectionPool

from collector_api.contract.prepare import Rejected, prepare_row
from collector_api.store.traces import assembly
from collector_api.store.traces.assembly import Built, DueTrace, StagedSpan
from collector_api.traces import mapping as conventions
from collector_api.traces.prices import PriceTable
from collector_api.traces.sealing import PayloadError, cipher, redactor_for
from otel_bridge.assemble import build_workflow_log, finished_records
from otel_bridge.pii import Redactor, known_values
from otel_bridge.spanrecord import STATUS_UNSET, EventRecord, LinkRecord, SpanRecord

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AssemblyConfig:
    secret: str
    prices: PriceTable
    quiet_s: float = 10.0
    max_age_s: float = 600.0
    batch: int = 500
    chunk: int = 100  # traces per transaction; chunks are pipelined (assemble_due)


@dataclass
class AssemblyReport:
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, outcome: str, n: int = 1) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + n


def _record(span: StagedSpan, payload: dict) -> SpanRecord:
    return SpanRecord(
        name=str(payload.get("n") or ""), trace_id=int(span.trace_id, 16), span_id=int(span.span_id, 16),
        parent_span_id=int(span.parent_span_id, 16) if span.parent_span_id else None,
        start_time=span.start_ns, end_time=span.end_ns if span.end_ns is not None else span.start_ns,
        status=payload.get("s") or STATUS_UNSET, status_description=payload.get("d"),
        attributes=payload.get("a") or {},
        events=tuple(EventRecord(str(n), int(ts), a or {}) for n, ts, a in payload.get("e") or ()),
        kind=payload.get("k"), dropped_events=int(payload.get("de") or 0),
        links=tuple(LinkRecord(int(t, 16), int(sid, 16), a or {}) for t, sid, a in payload.get("l") or ()))


def open_spans(client_id: str, secret: str, spans: Sequence[StagedSpan]) -> tuple[list[SpanRecord], list, dict]:
    """(records, one per span id; the raw person values of the trace; resource attributes)."""
    records, pairs, resource, _ = _open(client_id, secret, spans)
    return records, pairs, resource


def _open(client_id: str, secret: str,
          spans: Sequence[StagedSpan]) -> tuple[list[SpanRecord], list, dict, dict[int, str | None]]:
    """open_spans, plus each span's searchable text by span id (see `_searchable`)."""
    box = cipher(secret, client_id)
    seen: set[str] = set()
    records, pairs, resource, texts = [], [], {}, {}
    for span in spans:
        if span.span_id in seen:
            continue  # a replay: at-least-once delivery
        seen.add(span.span_id)
        try:
            plain = box.open(span.trace_id, span.span_id, span.payload)
            payload = orjson.loads(plain)
        except PayloadError:
            logger.error("tenant %s: %s; span skipped", client_id, f"span {span.span_id} does not decrypt")
            continue
        pairs.extend(tuple(p) for p in payload.get("p") or ())
        resource.update(payload.get("r") or {})
        record = _record(span, payload)
        texts[record.span_id] = _searchable(plain) if next(reversed(payload), None) == "p" else None
        records.append(record)
    return records, pairs, resource, texts


def _searchable(plain: bytes) -> str | None:
    """The sealed JSON text of a span without its raw person values (``"p"``, the payload's last
    member: traces_decode._sealed_row), lowered; None when it cannot be cut off."""
    cut = plain.rfind(b',"p":')  # a quote inside a JSON string is escaped: this is the member
    return plain[:cut].decode("utf-8", "surrogatepass").lower() if cut > 0 else None


# A known value holding a character JSON escapes is not found verbatim in the text; a sigma's
# lowercase depends on its neighbours. Such values: every span is walked.
_NOT_VERBATIM = frozenset('"\\σς') | frozenset(map(chr, range(0x20)))


def _replace_known(records: list[SpanRecord], r: Redactor, pairs: list,
                   texts: dict[int, str | None] | None = None) -> list[SpanRecord]:
    """Person values known anywhere in the trace, replaced in every span's text. Only the known
    values: every string was scrubbed by the pattern detectors on arrival (traces_decode).

    A span whose whole JSON text (`texts`, lowered) holds none of the values is kept as it is:
    every string, key and event of the span is in that text, so none of them could hold one
    (Redactor.replace_known checks the same lowered substrings before it replaces)."""
    known = known_values({}, (), pairs)
    if not known:
        return records
    if texts is None or any(not _NOT_VERBATIM.isdisjoint(low) for low in known.lows):
        texts = {}
    out = []
    for s in records:
        text = texts.get(s.span_id)
        if text is not None and not any(low in text for low in known.lows):
            out.append(s)
            continue
        attrs = {k: r.replace_known(v, known) for k, v in s.attributes.items()}
        events = tuple(EventRecord(str(r.replace_known(e.name, known)), e.timestamp,
                                   _as_dict(r.replace_known(dict(e.attributes), known))) for e in s.events)
        links = tuple(LinkRecord(link.trace_id, link.span_id, _as_dict(r.replace_known(dict(link.attributes), known)))
                      for link in s.links)
        out.append(SpanRecord(str(r.replace_known(s.name, known)), s.trace_id, s.span_id, s.parent_span_id,
                              s.start_time, s.end_time, s.status, str(r.replace_known(s.status_description, known))
                              if s.status_description else None, attrs, events, s.kind, s.dropped_events, links))
    return out


def _serialize(log: dict) -> tuple[str | None, bool]:
    """(the log's JSON text, whether prepare_row must walk it to clean it). orjson refuses lone
    surrogates and integers beyond 64 bits and escapes U+0000 as ``\\u0000``: a text without
    that escape that orjson wrote needs no cleaning walk (~1 ms per trace saved)."""
    try:
        text = orjson.dumps(log)
    except orjson.JSONEncodeError:
        return None, True
    if b"\\u0000" in text:
        return None, True
    return text.decode(), False


def _as_dict(value: object) -> dict:
    return value if isinstance(value, dict) else {"redaction": value}  # "<redaction failed>": never raw


def build_trace(trace: DueTrace, spans: Sequence[StagedSpan], cfg: AssemblyConfig,
                ticket_attribute: str | None) -> Built:
    """One due trace -> its LogRow (or why not). Pure but for logging; runs in a thread."""
    records, pairs, resource, texts = _open(trace.client_id, cfg.secret, spans)
    records = finished_records(records)
    if not records:
        return Built(trace, None, "failed", trace.span_count)
    redactor = redactor_for(cfg.secret, trace.client_id)
    records = _replace_known(records, redactor, pairs, texts)
    root, _ = conventions.find_root(records)
    if conventions.is_bridge_root(root):
        return Built(trace, None, "bridge", trace.span_count)
    prepared = conventions.prepare(records, cfg.prices, ticket_attribute)
    ident = {"client_id": trace.client_id, "service_name": resource.get("service.name"),
             "environment": resource.get("deployment.environment.name") or resource.get("deployment.environment"),
             "workflow_version": resource.get("service.version")}
    ident = {k: str(v)[:64] for k, v in ident.items() if v is not None}
    log = build_workflow_log(prepared.records, identification=ident, dropped_spans=trace.dropped_spans)
    log = conventions.finish(log, prepared, dropped_spans=trace.dropped_spans)
    text, needs_cleaning = _serialize(log)
    row = prepare_row(0, log, trace.client_id, trace.trace_id, may_hold_nul=needs_cleaning, source_text=text)
    if isinstance(row, Rejected):  # cannot happen for checked spans; never silently
        logger.error("tenant %s trace %s: assembled log refused: %s", trace.client_id, trace.trace_id, row.reason)
        return Built(trace, None, "failed", trace.span_count)
    return Built(trace, row, "assembled", trace.span_count)


async def assemble_due(pool: AsyncConnectionPool, cfg: AssemblyConfig) -> AssemblyReport:
    """One pass: every due trace (up to cfg.batch) assembled, stored or replaced, and marked.

    The pass works in chunks of `cfg.chunk` traces of one tenant, as a pipeline: while chunk k is
    built (in a thread: the collector's CPU), chunk k+1's spans are read and chunk k-1's logs
    written (PostgreSQL's). Each chunk is stored and marked in one transaction, so a pass that
    stops half way leaves every chunk either done or still due: re-running it is idempotent."""
    report = AssemblyReport()
    due = await assembly.due_traces(pool, quiet_s=cfg.quiet_s, max_age_s=cfg.max_age_s, limit=cfg.batch)
    by_tenant: dict[str, list[DueTrace]] = {}
    for t in due:
        by_tenant.setdefault(t.client_id, []).append(t)
    chunks = [(client_id, traces[i:i + cfg.chunk]) for client_id, traces in by_tenant.items()
              for i in range(0, len(traces), cfg.chunk)]
    loading: asyncio.Future | None = None
    writing: asyncio.Future | None = None
    try:
        for k, (client_id, traces) in enumerate(chunks):
            batch = await (loading or _load(pool, client_id, traces))
            loading = asyncio.ensure_future(_load(pool, *chunks[k + 1])) if k + 1 < len(chunks) else None
            built = await asyncio.to_thread(_build_all, traces, batch.spans, cfg, batch.ticket_attribute,
                                            batch.logged)
            if writing is not None:
                await writing
            writing = asyncio.ensure_future(_store(pool, client_id, built, report))
        if writing is not None:
            await writing
    finally:
        pending = [f for f in (loading, writing) if f is not None and not f.done()]
        for f in pending:
            f.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    return report


async def _load(pool: AsyncConnectionPool, client_id: str, traces: list[DueTrace]) -> assembly.Batch:
    return await assembly.load_batch(pool, client_id, [t.trace_id for t in traces])


async def _store(pool: AsyncConnectionPool, client_id: str, built: list[Built], report: AssemblyReport) -> None:
    await assembly.finish(pool, client_id, built)
    for b in built:
        report.add("reassembled" if b.trace.log_id is not None and b.row is not None else b.outcome)


def _build_all(traces: list[DueTrace], spans: list[StagedSpan], cfg: AssemblyConfig, ticket_attribute: str | None,
               logged: set[str]) -> list[Built]:
    by_trace: dict[str, list[StagedSpan]] = {}
    for s in spans:
        by_trace.setdefault(s.trace_id, []).append(s)
    out = []
    for t in traces:
        if t.log_id is None and t.trace_id in logged:  # its log came over /v1/logs (the bridge)
            out.append(Built(t, None, "bridge", t.span_count))
            continue
        try:
            out.append(build_trace(t, by_trace.get(t.trace_id, []), cfg, ticket_attribute))
        except Exception:  # noqa: BLE001 - one bad trace must not stop the others
            logger.exception("tenant %s trace %s: assembly failed", t.client_id, t.trace_id)
            out.append(Built(t, None, "failed", t.span_count))
    return out

