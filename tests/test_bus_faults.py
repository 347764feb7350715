"""The bus when things break: NATS out of reach (a proxy stopped, then started again), a
service killed with SIGKILL before or while it publishes, and random kills of either
service of an exchange. Nothing committed is lost and every effect happens once."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import tempfile
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reactor import Runtime
from tests.helpers import wait_for
from tests.test_bus_support import (
    NATS_URL,
    Answered,
    Ask,
    Asked,
    Proxy,
    answerer,
    asker,
    delete_streams,
    needs_nats,
    of_type,
    services,
    stream_of,
)

pytestmark = needs_nats
__all__ = ["services"]  # the fixture
ROOT = Path(__file__).resolve().parent.parent


def test_nats_out_of_reach_and_back_loses_nothing(
    tmp_path: Path, services: Callable[[str], str]
) -> None:
    """While A cannot reach NATS its commands still commit, its backlog grows and shows;
    once NATS is back the backlog drains and every answer comes back."""
    a, b = services("asker"), services("answerer")
    proxy = Proxy().start()
    try:
        with (
            asker(f"sqlite:///{tmp_path}/a.db", a, proxy.url) as rt_a,
            answerer(f"sqlite:///{tmp_path}/b.db", b) as rt_b,
        ):
            for n in range(1, 6):
                rt_a.send(Ask(n))
            assert wait_for(lambda: len(of_type(rt_a, Answered)) == 5, 30)
            proxy.stop()
            assert wait_for(lambda: not _bus(rt_a).connected, 10)
            for n in range(6, 16):
                rt_a.send(Ask(n))
            assert wait_for(lambda: _bus(rt_a).outbox_backlog == 10, 10)
            assert len(of_type(rt_b, Asked)) == 5
            proxy.start()
            assert wait_for(lambda: len(of_type(rt_a, Answered)) == 15, 30)
            assert _bus(rt_a).outbox_backlog == 0 and _bus(rt_a).connected
            assert sorted(e.n for e in of_type(rt_b, Asked)) == list(range(1, 16))
    finally:
        proxy.stop()


def _bus(rt: Runtime) -> Any:
    health = rt.health().bus
    assert health is not None
    return health


class Service:
    """One service of the exchange in a subprocess (see `tests.test_bus_support.main`)."""

    def __init__(self, role: str, folder: Path, names: dict[str, str], bus: str) -> None:
        me, peer = (names["a"], names["b"]) if role == "asker" else (names["b"], names["a"])
        url = f"sqlite:///{folder}/{role}.db"
        self.log = open(folder / f"{role}.log", "a")  # noqa: SIM115 (closed by kill)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.test_bus_support", role, url, me, peer, bus],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )

    def acks(self, count: int, timeout: float = 30) -> list[int]:
        """The next `count` questions the asker has acknowledged."""
        out = self.proc.stdout
        assert out is not None
        got: list[int] = []
        while len(got) < count:
            ready, _, _ = select.select([out], [], [], timeout)
            line = out.readline() if ready else ""
            assert line, f"the asker stopped answering; see {self.log.name}"
            got.append(int(line))
        return got

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.communicate(timeout=30)
        self.log.close()


def _exchange_settles(folder: Path, names: dict[str, str]) -> None:
    """Run both services in this process until every question is answered; check that
    each was asked, carried, answered and answered back exactly once."""
    with (
        asker(f"sqlite:///{folder}/asker.db", names["a"]) as rt_a,
        answerer(f"sqlite:///{folder}/answerer.db", names["b"]) as rt_b,
    ):
        asked = of_type(rt_a, Asked)
        wanted = sorted(e.n for e in asked)
        assert wanted == list(range(1, len(wanted) + 1))
        assert wait_for(lambda: len(of_type(rt_a, Answered)) >= len(wanted), 60)
        assert wait_for(lambda: _bus(rt_a).outbox_backlog == 0, 10)
        sent = {e.event_id for e in rt_a.read_all(types=[Asked])}
        assert {e.event_id for e in rt_b.read_all(types=[Asked])} == sent
        for rt in (rt_a, rt_b):
            for cls in (Asked, Answered):
                counts = Counter(e.n for e in of_type(rt, cls))
                assert sorted(counts) == wanted and set(counts.values()) == {1}, (rt, cls)


@pytest.mark.parametrize("reachable", [False, True], ids=["before-publish", "while-publishing"])
def test_the_outbox_publishes_again_after_a_kill_9(
    tmp_path: Path, services: Callable[[str], str], reachable: bool
) -> None:
    """A is killed with SIGKILL after committing questions it could not publish yet (NATS
    out of reach), or while publishing; restarted, it publishes what was not confirmed."""
    names = {"a": services("asker"), "b": services("answerer")}
    proxy = Proxy().start()
    if not reachable:
        proxy.stop()
    try:
        a = Service("asker", tmp_path, names, proxy.url)
        a.acks(40)
        a.kill()
    finally:
        proxy.stop()
    _exchange_settles(tmp_path, names)


@settings(max_examples=max(3, settings().max_examples // 20), deadline=None)
@given(st.lists(st.tuples(st.sampled_from("ab"), st.integers(1, 40)), min_size=1, max_size=3))
def test_random_kills_of_either_service_lose_nothing_and_act_once(
    kills: list[tuple[str, int]],
) -> None:
    """Asker and answerer run in two processes; either is killed after a random number
    of questions, then started again; finally every question is answered once."""
    run = uuid.uuid4().hex[:8]
    names = {"a": f"k{run}-asker", "b": f"k{run}-answerer"}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        running = {k: Service(role, folder, names, NATS_URL) for k, role in _ROLES.items()}
        try:
            for victim, after in kills:
                running["a"].acks(after)
                running[victim].kill()
                running[victim] = Service(_ROLES[victim], folder, names, NATS_URL)
        finally:
            for service in running.values():
                service.kill()
        try:
            _exchange_settles(folder, names)
        finally:
            delete_streams([stream_of(n) for n in names.values()])


_ROLES = {"a": "asker", "b": "answerer"}
