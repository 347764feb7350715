"""Two services on a real NATS server: an exported integration event is imported by the
other service with its lineage, in order per source stream, once; a redelivery or a
republish stores nothing; undecodable messages are dead-lettered without blocking;
upcasters apply to imported events; the answer comes back to the asker."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reactor import Envelope, Registry, Runtime, event, open_store, upcaster
from reactor.cli import main as cli
from reactor.store.base import Append, Checkpoint
from tests.helpers import wait_for
from tests.test_bus_support import (
    NATS_URL,
    Answered,
    Ask,
    Asked,
    Noted,
    answerer,
    asker,
    needs_nats,
    of_type,
    on_nats,
    services,
    stream_of,
    subject_of,
)

pytestmark = needs_nats
__all__ = ["services"]  # the fixture


def test_an_exported_event_arrives_with_its_lineage_and_the_answer_comes_back(
    tmp_path: Path, services: Callable[[str], str]
) -> None:
    """A's command emits a domain and an integration event; only the integration event
    crosses, into B's stream `<A>/<stream>`, with its id, correlation and causation, and
    its source in the metadata; B's saga answers and the answer reaches A."""
    a, b = services("asker"), services("answerer")
    with (
        asker(f"sqlite:///{tmp_path}/a.db", a) as rt_a,
        answerer(f"sqlite:///{tmp_path}/b.db", b) as rt_b,
    ):
        sent = rt_a.send(Ask(1), correlation_id="order-1")
        assert wait_for(lambda: of_type(rt_a, Answered) == [Answered(1)], 30)
        asked = next(e for e in sent.events if isinstance(e.event, Asked))
        [imported] = list(rt_b.read_all(types=[Asked]))
        assert imported.event == Asked(1)
        assert imported.event_id == asked.event_id
        assert imported.stream_id == f"{a}/Asker-1"
        assert (imported.correlation_id, imported.causation_id) == (
            "order-1",
            sent.events[0].causation_id,
        )
        assert imported.metadata == {"source": a, "source_stream": "Asker-1", "source_seq": 2}
        assert of_type(rt_b, Noted) == []
        [answer] = list(rt_a.read_all(types=[Answered]))
        assert answer.correlation_id == "order-1"  # the order's lineage, across both services
        assert answer.metadata["source"] == b
        health = rt_b.health().bus
        assert health is not None and health.connected and health.imported == 1
        assert health.sources == (stream_of(a),)
    subjects = on_nats(lambda js: _subjects(js, stream_of(a)))
    assert subjects == {subject_of(a, "bustest.Asked"): 1}


async def _subjects(js: Any, stream: str) -> dict[str, int]:
    info = await js.stream_info(stream, subjects_filter=">")
    return dict(info.state.subjects or {})


def test_each_source_stream_arrives_in_order_and_once(
    tmp_path: Path, services: Callable[[str], str]
) -> None:
    """Events published to a few streams, in any interleaving, arrive in each stream's
    order, each once (hypothesis draws the interleavings; one pair of services serves
    every example)."""
    a, b = services("a"), services("b")
    examples = iter(range(1_000_000))
    with (
        Runtime(f"sqlite:///{tmp_path}/a.db", service=a, bus=NATS_URL) as rt_a,
        Runtime(f"sqlite:///{tmp_path}/b.db", service=b, bus=NATS_URL, imports=[Asked]) as rt_b,
    ):

        @settings(max_examples=max(10, settings().max_examples // 2), deadline=None)
        @given(st.lists(st.integers(0, 4), min_size=1, max_size=60))
        def exchange(streams: list[int]) -> None:
            run, after = next(examples), rt_b.store.last_position()
            for n, k in enumerate(streams):
                rt_a.publish(Asked(n), stream=f"S{run}-{k}")
            assert wait_for(lambda: len(list(rt_b.read_all(after, types=[Asked]))) >= len(streams))
            got: dict[str, list[int]] = {}
            for env in rt_b.read_all(after, types=[Asked]):
                got.setdefault(env.stream_id, []).append(env.event.n)
            sent: dict[str, list[int]] = {}
            for n, k in enumerate(streams):
                sent.setdefault(f"{a}/S{run}-{k}", []).append(n)
            assert got == sent

        exchange()


def test_a_redelivery_stores_nothing_and_acts_once(
    tmp_path: Path, services: Callable[[str], str]
) -> None:
    """B's consumer is deleted, so JetStream delivers every question again: B stores
    nothing new and answers nothing twice."""
    a, b = services("asker"), services("answerer")
    url_b = f"sqlite:///{tmp_path}/b.db"
    with asker(f"sqlite:///{tmp_path}/a.db", a) as rt_a:
        with answerer(url_b, b) as rt_b:
            for n in range(1, 21):
                rt_a.send(Ask(n))
            assert wait_for(lambda: len(of_type(rt_a, Answered)) == 20, 30)
            durable = rt_b._bus.config.durable if rt_b._bus else ""
            head = rt_b.store.last_position()
        on_nats(lambda js: js.delete_consumer(stream_of(a), durable))
        with answerer(url_b, b) as rt_b:
            assert wait_for(lambda: _redelivered(rt_b) == 20, 30)
            assert rt_b.store.last_position() == head
            assert sorted(e.n for e in of_type(rt_b, Answered)) == list(range(1, 21))
        assert sorted(e.n for e in of_type(rt_a, Answered)) == list(range(1, 21))


def _redelivered(rt: Runtime) -> int:
    health = rt.health().bus
    return health.redelivered if health else 0


def test_a_republish_is_dropped_by_jetstream(
    tmp_path: Path, services: Callable[[str], str]
) -> None:
    """An outbox that lost its checkpoint publishes everything again: JetStream keeps
    one message per event id."""
    a = services("a")
    url = f"sqlite:///{tmp_path}/a.db"
    with Runtime(url, service=a, bus=NATS_URL) as rt:
        for n in range(10):
            rt.publish(Asked(n), stream="S")
        assert wait_for(lambda: _exported(rt) == (10, 0), 30)
    store = open_store(url)
    store.commit([Append("", (), None, Checkpoint(name=f"bus:outbox:{a}", position=0))])
    store.close()
    with Runtime(url, service=a, bus=NATS_URL) as rt:
        assert wait_for(lambda: _exported(rt) == (10, 0), 30)
    assert on_nats(lambda js: _subjects(js, stream_of(a))) == {subject_of(a, "bustest.Asked"): 10}


def _exported(rt: Runtime) -> tuple[int, int]:
    health = rt.health().bus
    return (health.exported, health.outbox_backlog) if health else (0, -1)


def test_undecodable_messages_are_dead_lettered_and_do_not_block(
    tmp_path: Path, services: Callable[[str], str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Messages on an imported subject without headers, of an unknown type, of a newer
    version, or with corrupt data are kept and dead-lettered under `bus:inbox` (with their
    subject and sequence); the good event after them is imported; `reactor dlq list`
    shows them."""
    a, b = services("a"), services("b")
    url_b = f"sqlite:///{tmp_path}/b.db"
    subject = subject_of(a, "bustest.Asked")
    good = {"Nats-Msg-Id": "x", "Reactor-Type": "bustest.Asked", "Reactor-Version": "1"}
    good |= {"Reactor-Service": a, "Reactor-Stream": "S"}
    bad: list[tuple[dict[str, str] | None, bytes]] = [
        (None, b'{"n": 1}'),
        ({**good, "Nats-Msg-Id": "p2", "Reactor-Type": "bustest.Nope"}, b'{"n": 1}'),
        ({**good, "Nats-Msg-Id": "p3", "Reactor-Version": "9"}, b'{"n": 1}'),
        ({**good, "Nats-Msg-Id": "p4"}, b'{"n": "one"'),
    ]

    async def send(js: Any) -> None:
        for found, data in bad:
            await js.publish(subject, data, headers=found)

    with (
        Runtime(f"sqlite:///{tmp_path}/a.db", service=a, bus=NATS_URL) as rt_a,
        Runtime(url_b, service=b, bus=NATS_URL, imports=[Asked]) as rt_b,
    ):
        on_nats(send)
        rt_a.publish(Asked(7), stream="S")
        assert wait_for(lambda: of_type(rt_b, Asked) == [Asked(7)], 30)
        assert wait_for(lambda: len(rt_b.dead_letters("bus:inbox")) == 4, 10)
        letters = rt_b.dead_letters("bus:inbox")
        assert [d.envelope.event.sequence for d in letters if d.envelope] == [1, 2, 3, 4]
        assert all(f"{subject} (stream {stream_of(a)}, seq " in d.error for d in letters)
        assert "header(s) Nats-Msg-Id" in letters[0].error
        assert "'bustest.Nope'" in letters[1].error
        assert "version 9" in letters[2].error
        assert "DecodeError" in letters[3].error
    cli(["dlq", "list", "--store", url_b])
    assert capsys.readouterr().out.count("bus:inbox") == 4


def test_imported_events_are_upcast(tmp_path: Path, services: Callable[[str], str]) -> None:
    """A exports version 1 of a type; B knows version 2 and its upcaster: B stores it
    upcast, as any old event."""
    old, new = Registry(), Registry()

    @event("bustest.Priced", kind="integration", registry=old)
    @attrs.frozen
    class PricedV1:
        cents: int

    @event("bustest.Priced", version=2, kind="integration", registry=new)
    @attrs.frozen
    class Priced:
        cents: int
        currency: str

    @upcaster("bustest.Priced", from_version=1, registry=new)
    def _(data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "currency": "EUR"}

    a, b = services("a"), services("b")
    with (
        Runtime(f"sqlite:///{tmp_path}/a.db", service=a, bus=NATS_URL, registry=old) as rt_a,
        Runtime(
            f"sqlite:///{tmp_path}/b.db", service=b, bus=NATS_URL, imports=[Priced], registry=new
        ) as rt_b,
    ):
        rt_a.publish(PricedV1(250), stream="P")
        assert wait_for(lambda: of_type(rt_b, Priced) == [Priced(250, "EUR")], 30)


def test_a_subscriber_in_the_importer_sees_imported_events(
    tmp_path: Path, services: Callable[[str], str]
) -> None:
    """Imported events reach subscribers like local ones."""
    a, b = services("a"), services("b")
    seen: list[Envelope] = []
    with (
        Runtime(f"sqlite:///{tmp_path}/a.db", service=a, bus=NATS_URL) as rt_a,
        Runtime("memory://", service=b, bus=NATS_URL, imports=["bustest.Asked"]) as rt_b,
    ):
        rt_b.subscribe(lambda e, env: seen.append(env), types=[Asked])
        rt_a.publish(Asked(3), stream="S", correlation_id="c-3")
        assert wait_for(lambda: len(seen) == 1, 30)
        assert seen[0].correlation_id == "c-3" and seen[0].metadata["source"] == a


def test_a_runtime_starts_degraded_when_nats_is_down(
    tmp_path: Path, services: Callable[[str], str], caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing listens at the URL: the runtime starts (with a warning), commits, and
    counts what waits for export."""
    free = _free_port()
    caplog.set_level(logging.WARNING, logger="reactor.bus")
    with Runtime(
        f"sqlite:///{tmp_path}/a.db", service=services("a"), bus=f"nats://127.0.0.1:{free}"
    ) as rt:
        assert "running degraded" in caplog.text
        rt.publish(Asked(1), stream="S")
        rt.publish(Asked(2), stream="S")
        health = rt.health().bus
        assert health is not None and not health.connected and health.error
        assert wait_for(lambda: _exported(rt) == (0, 2), 10)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port
