"""Run a workflow on every item of a dataset: an experiment (docs/experiments.md).

    from otel_bridge import configure, experiments
    configure()
    result = experiments.run(dataset="hard-cases", workflow=handle_ticket, name="prompt-v7")

Items are fetched from the collector with a read-scope key (``LOG_COLLECTOR_READ_KEY``) in keyset
pages; the workflow (a ``@workflow``-decorated function, sync or async) is called once per item
with at most ``concurrency`` calls at a time; every log it produces carries the experiment's id
and name and the item's id (root-span attributes, ``otel_bridge.tagging``) and ships through the
normal pipeline (redaction, retries, spool). A workflow's exception counts the item as failed
and never stops the run; telemetry never fails the workflow. Standard library only (urllib).
"""
from __future__ import annotations

import asyncio
import contextvars
import inspect
import json
import logging
import sys
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TextIO
from urllib.error import HTTPError, URLError
from urllib.parse import quote, urlencode
from urllib.request import Request, urlopen

from otel_bridge import attributes as A
from otel_bridge.tagging import tagged

logger = logging.getLogger(__name__)
PAGE = 500


class ExperimentError(Exception):
    """The experiment could not start: no such dataset, a bad key, the collector unreachable."""


@dataclass(frozen=True)
class ExperimentResult:
    id: str
    name: str
    dataset: str
    items: int
    succeeded: int  # calls that returned
    failed: int  # calls that raised (their logs say FAILED)
    delivered: bool  # every log reached the collector (otel_bridge.flush)
    url: str  # the experiment's page in the viewer


def _settings_value(name: str) -> Any:
    from config.bridge import BridgeSettings

    return getattr(BridgeSettings(), name)


def _connection(url: str | None, api_key: str | None) -> tuple[str, str]:
    url = url or _settings_value("log_collector_url")
    if not url:
        raise ExperimentError("no collector URL: pass url= or set LOG_COLLECTOR_URL")
    if api_key is None:
        secret = _settings_value("log_collector_read_key")
        api_key = secret.get_secret_value() if secret is not None else None
    if not api_key:
        raise ExperimentError("no read key: pass api_key= or set LOG_COLLECTOR_READ_KEY"
                              " (flusso-obs keys create --client ID --scope read)")
    return url.rstrip("/"), api_key


def _get(url: str, api_key: str, timeout_s: float) -> dict:
    request = Request(url, headers={"X-API-Key": api_key, "Accept": "application/json"})
    try:
        with urlopen(request, timeout=timeout_s) as response:  # noqa: S310 (the configured collector)
            return json.loads(response.read())
    except HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("detail")
        except (ValueError, AttributeError):
            detail = None
        raise ExperimentError(f"GET {url}: HTTP {exc.code}: {detail or exc.reason}") from None
    except (URLError, TimeoutError, OSError) as exc:
        raise ExperimentError(f"GET {url}: {exc}") from None


def fetch_items(dataset: str, *, url: str, api_key: str, limit: int | None = None,
                timeout_s: float = 30.0) -> tuple[dict, list[dict]]:
    """(the dataset, its items in order): every page of GET /api/v1/datasets/{name}/items."""
    items: list[dict] = []
    after: int | None = None
    meta: dict = {}
    while limit is None or len(items) < limit:
        query = {"limit": PAGE, **({"after": after} if after is not None else {})}
        page = _get(f"{url}/api/v1/datasets/{quote(dataset, safe='')}/items?{urlencode(query)}", api_key, timeout_s)
        meta = page.get("dataset") or meta
        items += page.get("items") or []
        after = page.get("next_after")
        if after is None:
            break
    return meta, items[:limit] if limit is not None else items


class Progress:
    """A one-line progress bar on a terminal, else a line every 10 %."""

    def __init__(self, name: str, total: int, stream: TextIO | None, enabled: bool = True):
        self.name, self.total, self.stream, self.enabled = name, total, stream or sys.stderr, enabled
        self.done = self.failed = 0
        self._lock, self._shown = threading.Lock(), -1
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def step(self, ok: bool) -> None:
        with self._lock:
            self.done += 1
            self.failed += 0 if ok else 1
            if self.enabled:
                self._show()

    def _show(self) -> None:
        share = self.done / self.total if self.total else 1.0
        text = f"{self.name}: {self.done}/{self.total} items, {self.failed} failed"
        try:
            if self._tty:
                bar = "#" * int(share * 30)
                self.stream.write(f"\r[{bar:<30}] {text}" + ("\n" if self.done == self.total else ""))
            elif int(share * 10) != self._shown or self.done == self.total:
                self._shown = int(share * 10)
                self.stream.write(text + "\n")
            self.stream.flush()
        except (OSError, ValueError):  # a closed stream never stops the run
            self.enabled = False


def _tags(experiment_id: str, name: str, dataset: dict, item: dict) -> dict[str, str | int]:
    tags: dict[str, str | int] = {A.EXPERIMENT_ID: experiment_id, A.EXPERIMENT_NAME: name[:128]}
    for key, attr in (("id", A.DATASET_ID), ("name", A.DATASET_NAME)):
        if isinstance(dataset.get(key), (str, int)):
            tags[attr] = dataset[key]
    if isinstance(item.get("id"), int):
        tags[A.DATASET_ITEM_ID] = item["id"]
    return tags


def _default_prepare(item: dict) -> Any:
    return item.get("input")


def _run_sync(workflow: Callable[..., Any], calls: list[tuple[dict, Any]], concurrency: int,
              progress: Progress) -> None:
    def one(tags: dict, argument: Any) -> None:
        ok = True
        try:
            with tagged(tags):
                workflow(argument)
        except Exception:
            ok = False
            logger.warning("otel_bridge.experiments: the workflow raised on item %s", tags.get(A.DATASET_ITEM_ID),
                           exc_info=True)
        progress.step(ok)

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="flusso-experiment") as pool:
        for tags, argument in calls:
            pool.submit(contextvars.copy_context().run, one, tags, argument)


async def _run_async(workflow: Callable[..., Any], calls: list[tuple[dict, Any]], concurrency: int,
                     progress: Progress) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one(tags: dict, argument: Any) -> None:
        async with gate:
            ok = True
            try:
                with tagged(tags):  # this task's own context
                    await workflow(argument)
            except Exception:
                ok = False
                logger.warning("otel_bridge.experiments: the workflow raised on item %s",
                               tags.get(A.DATASET_ITEM_ID), exc_info=True)
            progress.step(ok)

    await asyncio.gather(*(one(tags, argument) for tags, argument in calls))


def _plan(dataset: str, name: str, url: str | None, api_key: str | None, limit: int | None,
          prepare: Callable[[dict], Any] | None) -> tuple[str, str, dict, list[tuple[dict, Any]]]:
    from otel_bridge import runtime

    if runtime.STATE is None:
        raise ExperimentError("call otel_bridge.configure() first: the experiment's logs ship through it")
    if not isinstance(name, str) or not name.strip():
        raise ExperimentError("name: give the experiment a name (e.g. 'prompt-v7')")
    base, key = _connection(url, api_key)
    meta, items = fetch_items(dataset, url=base, api_key=key, limit=limit)
    experiment_id = uuid.uuid4().hex
    prepare = prepare or _default_prepare
    calls = [(_tags(experiment_id, name, meta, item), prepare(item)) for item in items]
    return experiment_id, base, meta, calls


def _finish(experiment_id: str, name: str, dataset: str, base: str, progress: Progress,
            flush_timeout_s: float) -> ExperimentResult:
    from otel_bridge import runtime

    delivered = runtime.flush(flush_timeout_s)
    return ExperimentResult(id=experiment_id, name=name, dataset=dataset, items=progress.total,
                            succeeded=progress.done - progress.failed, failed=progress.failed, delivered=delivered,
                            url=f"{base}/experiments/{experiment_id}")


async def arun(dataset: str, workflow: Callable[..., Any], name: str, *, concurrency: int = 4,
               prepare: Callable[[dict], Any] | None = None, url: str | None = None, api_key: str | None = None,
               limit: int | None = None, progress: bool = True, stream: TextIO | None = None,
               flush_timeout_s: float = 60.0) -> ExperimentResult:
    """`run` from inside a running event loop (an async workflow is awaited on it)."""
    concurrency = max(1, int(concurrency))
    experiment_id, base, meta, calls = await asyncio.to_thread(_plan, dataset, name, url, api_key, limit, prepare)
    bar = Progress(name, len(calls), stream, progress)
    if inspect.iscoroutinefunction(workflow):
        await _run_async(workflow, calls, concurrency, bar)
    else:
        await asyncio.to_thread(_run_sync, workflow, calls, concurrency, bar)
    return await asyncio.to_thread(_finish, experiment_id, name, dataset, base, bar, flush_timeout_s)


def run(dataset: str, workflow: Callable[..., Any], name: str, *, concurrency: int = 4,
        prepare: Callable[[dict], Any] | None = None, url: str | None = None, api_key: str | None = None,
        limit: int | None = None, progress: bool = True, stream: TextIO | None = None,
        flush_timeout_s: float = 60.0) -> ExperimentResult:
    """Run `workflow` on every item of `dataset` as the experiment `name` (a new id each run).

    `prepare(item)` makes the workflow's argument from an item (default: ``item["input"]``, the
    ticket as stored, with its ``ticket_id``). `url` and `api_key` default to LOG_COLLECTOR_URL and
    LOG_COLLECTOR_READ_KEY; `limit` runs the first items only. Blocks until every call returned
    and the logs were flushed; the result says how many failed and whether all were delivered."""
    if inspect.iscoroutinefunction(workflow):
        return asyncio.run(arun(dataset, workflow, name, concurrency=concurrency, prepare=prepare, url=url,
                                api_key=api_key, limit=limit, progress=progress, stream=stream,
                                flush_timeout_s=flush_timeout_s))
    experiment_id, base, meta, calls = _plan(dataset, name, url, api_key, limit, prepare)
    bar = Progress(name, len(calls), stream, progress)
    _run_sync(workflow, calls, max(1, int(concurrency)), bar)
    return _finish(experiment_id, name, dataset, base, bar, flush_timeout_s)

