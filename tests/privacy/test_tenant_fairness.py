"""Decoding is not serialized across tenants: one tenant's long decode (or its many requests)
never makes another tenant wait for a slot (collector_api.http.admission)."""
from __future__ import annotations

import asyncio

from collector_api.http.admission import CollectorState
from config.server import ServerSettings


def _state(concurrency: int = 4) -> CollectorState:
    return CollectorState(ServerSettings(_env_file=None, flusso_ingest_concurrency=concurrency), pool=None)


async def _acquired_within(ctx, seconds: float) -> bool:
    try:
        await asyncio.wait_for(ctx.__aenter__(), seconds)
    except TimeoutError:
        return False
    await ctx.__aexit__(None, None, None)
    return True


def test_another_tenant_decodes_while_one_tenant_decodes() -> None:
    async def run() -> tuple[bool, bool]:
        state = _state()
        async with state.decode_slot("big"):  # a long decode of tenant "big" in progress
            other = await _acquired_within(state.decode_slot("small"), 0.5)
            same = await _acquired_within(state.decode_slot("big"), 0.2)
        return other, same
    other, same = asyncio.run(run())
    assert other is True  # another tenant is not held up
    assert same is False  # the same tenant's next request waits for its own decode slot


def test_one_tenant_holds_at_most_half_of_the_work_slots() -> None:
    async def run() -> tuple[bool, bool, int]:
        state = _state(concurrency=4)
        held = [state.work_slot("big") for _ in range(2)]
        for ctx in held:
            await ctx.__aenter__()
        third = await _acquired_within(state.work_slot("big"), 0.2)
        other = await _acquired_within(state.work_slot("small"), 0.5)
        for ctx in held:
            await ctx.__aexit__(None, None, None)
        return third, other, len(state._work._tenants)
    third, other, left = asyncio.run(run())
    assert third is False and other is True
    assert left == 0  # no tenant is remembered once its requests are done
