"""Decoding is not serialized across tenants: one tenant's long decode (or its many requests)
never makes another tenant wait for a slot (collector_api.http.admission)."""
from __future__ import annotations

import asyncio

from collector_api.http.admission import CollectorState
from config.server import ServerSettings
from tests.helpers import run_async


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
        async with state.decode_slot.slot("big"):  # a long decode of tenant "big" in progress
            other = await _acquired_within(state.decode_slot.slot("small"), 0.5)
            same = await _acquired_within(state.decode_slot.slot("big"), 0.2)
        return other, same
    other, same = run_async(run())
    assert other is True  # another tenant is not held up
    assert same is False  # the same tenant's next request waits for its own decode slot


def test_one_tenant_holds_at_most_half_of_the_work_slots() -> None:
    async def run() -> tuple[bool, bool, int]:
        state = _state(concurrency=4)
        held = [state.work_slots.slot("big") for _ in range(2)]
        for ctx in held:
            await ctx.__aenter__()
        third = await _acquired_within(state.work_slots.slot("big"), 0.2)
        other = await _acquired_within(state.work_slots.slot("small"), 0.5)
        for ctx in held:
            await ctx.__aexit__(None, None, None)
        return third, other, len(state.work_slots._tenants)
    third, other, left = run_async(run())
    assert third is False and other is True
    assert left == 0  # no tenant is remembered once its requests are done


def test_the_slots_follow_the_tenant_admitted_in_the_task() -> None:
    """`async with state.decode_slot:` (as the edge writes it) takes the admitted tenant's slot."""
    async def hold(state: CollectorState, tenant: str, entered: asyncio.Event, release: asyncio.Event) -> None:
        async with state.admitted(tenant), state.work_slots, state.decode_slot:
            entered.set()
            await release.wait()

    async def run() -> tuple[bool, bool]:
        state = _state()
        release = asyncio.Event()
        big, small, again = asyncio.Event(), asyncio.Event(), asyncio.Event()
        tasks = [asyncio.create_task(hold(state, "big", big, release))]
        await asyncio.wait_for(big.wait(), 1)
        tasks.append(asyncio.create_task(hold(state, "small", small, release)))
        tasks.append(asyncio.create_task(hold(state, "big", again, release)))
        other = await _event_within(small, 0.5)
        same = await _event_within(again, 0.2)
        release.set()
        await asyncio.gather(*tasks)
        return other, same
    other, same = run_async(run())
    assert other is True and same is False


async def _event_within(event: asyncio.Event, seconds: float) -> bool:
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except TimeoutError:
        return False
    return True
