"""The reference-counted subscription primitive (nanny/ws/subscriptions.py) on a real event loop:
who opens, who waits, who closes, and what a cancelled holder leaves behind."""

from __future__ import annotations

import asyncio

import pytest

from nanny.tasks import TaskSet
from nanny.ws.subscriptions import Subscriptions


class Channel:
    """Opens and closes keys, slowly when told to, and writes down what it did."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str]] = []
        self.open_gate = asyncio.Event()
        self.open_gate.set()
        self.close_gate = asyncio.Event()
        self.close_gate.set()
        self.tasks = TaskSet()
        self.subs: Subscriptions[str, str] = Subscriptions(self.open, self.close, self.tasks)

    async def open(self, key: str, label: str = "") -> str:
        self.log.append(("open", key))
        await self.open_gate.wait()
        self.log.append(("opened", key))
        return f"{key}{label}"

    async def close(self, key: str, value: str) -> None:
        self.log.append(("close", value))
        await self.close_gate.wait()
        self.log.append(("closed", value))


async def test_the_first_holder_opens_and_the_last_closes():
    ch = Channel()
    async with ch.subs.hold("a", "!") as first:
        async with ch.subs.hold("a", "ignored") as second:
            assert first == second == "a!"
            assert ch.subs.keys() == ["a"]
        assert ch.log == [("open", "a"), ("opened", "a")]
    assert ch.log[-2:] == [("close", "a!"), ("closed", "a!")]
    assert "a" not in ch.subs and len(ch.subs) == 0


async def test_holders_arriving_while_it_opens_wait_for_it():
    ch = Channel()
    ch.open_gate.clear()
    entered = []

    async def holder(name: str) -> None:
        async with ch.subs.hold("a") as value:
            entered.append((name, value))
            await asyncio.sleep(0.01)

    tasks = [asyncio.create_task(holder(n)) for n in "xyz"]
    await asyncio.sleep(0.02)
    assert entered == [] and ch.log == [("open", "a")]
    ch.open_gate.set()
    await asyncio.gather(*tasks)
    assert sorted(entered) == [("x", "a"), ("y", "a"), ("z", "a")]
    assert [step for step, _ in ch.log] == ["open", "opened", "close", "closed"]


async def test_a_holder_cancelled_while_opening_still_leaves():
    ch = Channel()
    ch.open_gate.clear()

    async def holder() -> None:
        async with ch.subs.hold("a"):
            await asyncio.sleep(10)

    task = asyncio.create_task(holder())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert "a" not in ch.subs
    ch.open_gate.set()  # the open it started finishes, and what it opened is closed again
    await asyncio.sleep(0.01)
    assert ch.log == [("open", "a"), ("opened", "a"), ("close", "a"), ("closed", "a")]


async def test_a_key_held_again_while_closing_opens_after_the_close():
    ch = Channel()
    async with ch.subs.hold("a"):
        pass
    ch.close_gate.clear()
    leaving = asyncio.create_task(_hold_briefly(ch.subs, "a"))
    await asyncio.sleep(0.01)
    assert ch.log[-1] == ("close", "a")
    coming = asyncio.create_task(_hold_briefly(ch.subs, "a"))
    await asyncio.sleep(0.01)
    assert ch.log[-1] == ("close", "a")  # the new open waits for the close
    ch.close_gate.set()
    await asyncio.gather(leaving, coming)
    steps = [step for step, _ in ch.log[4:]]
    assert steps == ["open", "opened", "close", "closed", "open", "opened", "close", "closed"]


async def test_a_failed_open_fails_its_holders_and_is_not_closed():
    tasks = TaskSet()
    closed = []

    async def open_(key: str) -> str:
        raise ConnectionError("down")

    async def close(key: str, value: str) -> None:
        closed.append(key)

    subs: Subscriptions[str, str] = Subscriptions(open_, close, tasks)
    with pytest.raises(ConnectionError):
        async with subs.hold("a"):
            pass
    await asyncio.sleep(0)
    assert closed == [] and "a" not in subs


async def _hold_briefly(subs: Subscriptions[str, str], key: str) -> None:
    async with subs.hold(key):
        await asyncio.sleep(0)
