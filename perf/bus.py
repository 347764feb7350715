"""The event bus between two services on the local NATS server (127.0.0.1:4222), each in
its own process, next to raw nats-py JetStream moving the same payloads and headers
between two processes in the same run (the floor):

- throughput: integration events decided by commands in service A and handled by a
  subscriber in service B (A's journal and outbox, JetStream, B's inbox and journal),
  against raw `publish_async` in one process and a pull consumer acking each message in
  the other; then a new service C importing A's whole stream (the inbox alone), against
  a new raw consumer reading the raw stream;
- latency at low load (one event every 5 ms): from A's commit (`publish` returned) to B's
  subscriber, against a raw publish to the consumer's receipt.

Times are `time.monotonic()`, one clock for every process of the machine.

    python -m perf bus [--quick]
"""

from __future__ import annotations

import asyncio
import multiprocessing
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from typing import Any

import attrs
import nats

from perf.report import row
from reactor import Aggregate, Registry, Runtime, applies, command, event, handles
from reactor.bus.wire import headers
from reactor.store.base import StoredEvent

NATS_URL = "nats://127.0.0.1:4222"
SPAWN = multiprocessing.get_context("spawn")
PACE = 0.005  # seconds between events in the latency runs
registry = Registry()


@event("perfbus.OrderPlaced", kind="integration", registry=registry)
@attrs.frozen
class OrderPlaced:
    order_id: str
    sku: str
    qty: int
    amount: int


@command(registry=registry)
@attrs.frozen
class PlaceOrder:
    order_id: str


class Order(Aggregate, key="order_id"):
    @handles(PlaceOrder)
    def place(self, c: PlaceOrder) -> OrderPlaced:
        return OrderPlaced(c.order_id, "kettle", 2, 5000)

    @applies(OrderPlaced)
    def _placed(self, e: OrderPlaced) -> None:
        pass


class Arrivals:
    """When each id arrived; `serve(pipe)` answers "the next n arrivals" requests."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.seen = 0
        self.arrived = threading.Condition()

    def note(self, key: str) -> None:
        with self.arrived:
            self.at[key] = time.monotonic()
            self.arrived.notify_all()

    def serve(self, pipe: Connection) -> None:
        """Answer each count sent with the arrival times of that many more; None ends."""
        while (count := pipe.recv()) is not None:
            with self.arrived:
                wanted = self.seen + count
                if not self.arrived.wait_for(lambda n=wanted: len(self.at) >= n, 300):
                    raise SystemExit(f"only {len(self.at) - self.seen} of {count} arrived")
                pipe.send(dict(list(self.at.items())[self.seen : wanted]))
                self.seen = wanted


# -- the two sides, each in a process of its own ------------------------------------------------


def service_b(folder: str, bus: str, name: str, pipe: Connection) -> None:
    """Service B: imports OrderPlaced, a subscriber notes each arrival."""
    arrivals = Arrivals()
    url = f"sqlite:///{folder}/{name}.db"
    with Runtime(url, service=name, bus=bus, imports=[OrderPlaced], registry=registry) as b:
        b.subscribe(lambda e, env: arrivals.note(e.order_id), types=[OrderPlaced])
        pipe.send("ready")
        arrivals.serve(pipe)


def raw_consumer(stream: str, subject: str, durable: str, pipe: Connection) -> None:
    """A raw pull consumer: notes each message's id as it arrives, acks it."""
    arrivals = Arrivals()

    async def consume() -> None:
        nc = await nats.connect(NATS_URL)
        sub = await nc.jetstream().pull_subscribe(subject, durable=durable, stream=stream)
        pipe.send("ready")
        while True:
            try:
                msgs = await sub.fetch(256, timeout=1)
            except nats.errors.TimeoutError:
                continue
            for m in msgs:
                arrivals.note((m.headers or {})["Nats-Msg-Id"])
                await m.ack()

    threading.Thread(target=asyncio.run, args=(consume(),), daemon=True).start()
    arrivals.serve(pipe)


@contextmanager
def child(target: Callable[..., None], *args: Any) -> Iterator[Connection]:
    """Run `target(*args, pipe)` in a spawned process; its end of the pipe, once ready."""
    mine, theirs = SPAWN.Pipe()
    process = SPAWN.Process(target=target, args=(*args, theirs), daemon=True)
    process.start()
    try:
        if not mine.poll(60) or mine.recv() != "ready":
            raise SystemExit(f"{target.__name__} did not start")
        yield mine
    finally:
        mine.send(None)
        process.join(30)
        if process.is_alive():
            process.kill()


# -- the runs ---------------------------------------------------------------------------------


def reactor_runs(folder: str, bus: str, count: int, samples: int) -> dict[str, Any]:
    a = Runtime(f"sqlite:///{folder}/a.db", service="a", bus=bus, registry=registry)
    a.register(Order).start()
    try:
        with child(service_b, folder, bus, "b") as b:
            a.send(PlaceOrder("warm-up"))
            b.send(1)  # B finds A's stream (within a second) and pulls from it
            b.recv()
            b.send(samples)  # first, while both heaps are small
            sent = {}
            for n in range(samples):
                key = f"l-{n}"
                a.publish(OrderPlaced(key, "kettle", 2, 5000), stream=f"Order-{key}")
                sent[key] = time.monotonic()
                time.sleep(PACE)
            arrived = b.recv()
            b.send(count)
            start = time.monotonic()
            inflight: list[Any] = []
            for n in range(count):
                inflight.append(a.submit(PlaceOrder(f"t-{n}")))
                if len(inflight) >= 256:
                    for f in inflight:
                        f.get(60)
                    inflight.clear()
            for f in inflight:
                f.get(60)
            committed = time.monotonic()
            handled = max(b.recv().values())
        with child(service_b, folder, bus, "c") as c:  # a new service: A's stream, whole
            c.send(1 + samples + count)
            drained = _rate(c.recv())
        data, found = _sample(a)
    finally:
        a.stop()
    return {
        "drain": drained,
        "rate": count / (handled - start),
        "commits": count / (committed - start),
        "latency": [(arrived[k] - t) * 1000 for k, t in sent.items()],
        "data": data,
        "headers": found,
    }


def raw_runs(data: bytes, found: dict[str, str], count: int, samples: int) -> dict[str, Any]:
    stream = f"PERF_RAW_{uuid.uuid4().hex[:8]}"
    subject = f"{stream}.perfbus.OrderPlaced"

    async def create() -> None:
        nc = await nats.connect(NATS_URL)
        await nc.jetstream().add_stream(name=stream, subjects=[f"{stream}.>"])
        await nc.close()

    async def publish(ids: list[str], pace: float) -> dict[str, float]:
        nc = await nats.connect(NATS_URL)
        js = nc.jetstream()
        sent = {}
        for key in ids:
            sent[key] = time.monotonic()
            if pace:
                await js.publish(subject, data, headers={**found, "Nats-Msg-Id": key})
                await asyncio.sleep(pace)
            else:
                await js.publish_async(subject, data, headers={**found, "Nats-Msg-Id": key})
        await js.publish_async_completed()
        await nc.close()
        return sent

    async def delete() -> None:
        nc = await nats.connect(NATS_URL)
        await nc.jetstream().delete_stream(stream)
        await nc.close()

    asyncio.run(create())
    try:
        with child(raw_consumer, stream, subject, "raw") as consumer:
            lat_ids, ids = [f"l-{n}" for n in range(samples)], [f"t-{n}" for n in range(count)]
            consumer.send(samples)
            lat_sent = asyncio.run(publish(lat_ids, PACE))
            lat_arrived = consumer.recv()
            consumer.send(count)
            start = asyncio.run(publish(ids, 0))["t-0"]
            handled = max(consumer.recv().values())
        with child(raw_consumer, stream, subject, "raw2") as consumer:
            consumer.send(samples + count)
            drained = _rate(consumer.recv())
    finally:
        asyncio.run(delete())
    return {
        "drain": drained,
        "rate": count / (handled - start),
        "latency": [(lat_arrived[k] - t) * 1000 for k, t in lat_sent.items()],
    }


def _rate(arrived: dict[str, float]) -> float:
    """Arrivals per second, from the first to the last."""
    return (len(arrived) - 1) / (max(arrived.values()) - min(arrived.values()))


def _sample(a: Runtime) -> tuple[bytes, dict[str, str]]:
    """The payload and headers A exported for one event (what the raw runs send)."""
    env = next(iter(a.read_all(types=[OrderPlaced])))
    data = a.store.encode(env.event)[2]
    stored = StoredEvent(
        env.event_id, env.stream_id, env.seq, env.position, env.type, env.version, data,
        0.0, None, env.correlation_id, env.causation_id,
    )  # fmt: skip
    return data, headers("perf", stored)


def _delete(streams: list[str]) -> None:
    async def delete() -> None:
        nc = await nats.connect(NATS_URL)
        for name in streams:
            await nc.jetstream().delete_stream(name)
        await nc.close()

    asyncio.run(delete())


def _ms(label: str, ours: list[float], raw: list[float], cut: int) -> None:
    mine, floor = (
        statistics.quantiles(ours, n=100)[cut - 1],
        statistics.quantiles(raw, n=100)[cut - 1],
    )
    print(
        f"{label:<44} {mine:>12.2f} {'ms':<9} {'raw publish -> receive':<26} {floor:>12.2f} "
        f"{'ms':<9} ratio {mine / floor:5.2f}x"
    )


def main(quick: bool = False) -> None:
    count, samples = (3_000, 100) if quick else (20_000, 400)
    run = f"perf{uuid.uuid4().hex[:8]}"  # this run's own bus on the server
    print(f"\nbus: two services, two processes, NATS JetStream ({count:,} events; latency: "
          f"{samples} events, one every {PACE * 1000:g} ms)")  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        try:
            ours = reactor_runs(folder, f"{NATS_URL}/{run}", count, samples)
        finally:
            _delete([f"REACTOR-{run}_{service}" for service in "abc"])
    raw = raw_runs(ours["data"], ours["headers"], count, samples)
    row(
        "integration events, A's commit -> B's handler",
        ours["rate"],
        raw["rate"],
        "raw JetStream pub -> sub",
    )
    row(
        "  A's commands alone (their commits)",
        ours["commits"],
        raw["rate"],
        "raw JetStream pub -> sub",
    )
    row("a new importer drains A's stream", ours["drain"], raw["drain"], "raw pull consumer, acks")
    _ms("latency A's commit -> B's handler, p50", ours["latency"], raw["latency"], 50)
    _ms("latency A's commit -> B's handler, p99", ours["latency"], raw["latency"], 99)
