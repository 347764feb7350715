"""What the bus tests share: a two-service exchange (A asks, B answers, both over the bus),
unique service names whose streams are deleted after each test, a TCP proxy to take NATS
out of reach and back, and the subprocess that runs a service until it is killed.

    python -m tests.test_bus_support asker|answerer JOURNAL_URL SERVICE PEER BUS_URL [UPTO]
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import selectors
import socket
import sys
import threading
import uuid
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import attrs
import nats
import pytest
from nats.js.errors import NotFoundError

from reactor import Aggregate, Runtime, Saga, applies, command, event, handles, on

BUS = f"t{uuid.uuid4().hex[:8]}"  # this test run's own bus on the server
NATS_URL = f"nats://127.0.0.1:4222/{BUS}"


def nats_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 4222), timeout=1).close()
        return True
    except OSError:
        return False


needs_nats = pytest.mark.skipif(
    not nats_up() and os.environ.get("CI") != "true",
    reason="no NATS server on 127.0.0.1:4222 (these tests talk to a real one; CI=true fails)",
)

# -- the exchange: A asks, B answers ----------------------------------------------------------


@event("bustest.Asked", kind="integration")
@attrs.frozen
class Asked:
    n: int


@event("bustest.Answered", kind="integration")
@attrs.frozen
class Answered:
    n: int


@event("bustest.Noted")
@attrs.frozen
class Noted:
    """A domain event: never leaves its service."""

    n: int


@command
@attrs.frozen
class Ask:
    n: int


@command
@attrs.frozen
class Answer:
    n: int


class Asker(Aggregate, key="n"):
    asked: bool

    def __init__(self) -> None:
        self.asked = False

    @handles(Ask)
    def ask(self, c: Ask) -> list[object] | None:
        return None if self.asked else [Noted(c.n), Asked(c.n)]

    @applies(Asked)
    def _asked(self, e: Asked) -> None:
        self.asked = True

    @applies(Noted)
    def _noted(self, e: Noted) -> None:
        pass


class Answerer(Aggregate, key="n"):
    """The effect: answers each question once, however often it is asked."""

    answered: bool

    def __init__(self) -> None:
        self.answered = False

    @handles(Answer)
    def answer(self, c: Answer) -> Answered | None:
        return None if self.answered else Answered(c.n)

    @applies(Answered)
    def _answered(self, e: Answered) -> None:
        self.answered = True


class Answering(Saga, key="n"):
    """B's reaction to an imported question: its command id derives from the event."""

    @on(Asked, start=True)
    def asked(self, e: Asked, ctx: Any) -> None:
        ctx.send(Answer(e.n))
        ctx.done()


def asker(url: str, service: str, bus: str = NATS_URL, **options: Any) -> Runtime:
    """Service A: asks, imports the answers."""
    rt = Runtime(url, service=service, bus=bus, imports=[Answered], **options)
    return rt.register(Asker)


def answerer(url: str, service: str, bus: str = NATS_URL, **options: Any) -> Runtime:
    """Service B: imports the questions, answers each once."""
    rt = Runtime(url, service=service, bus=bus, imports=[Asked], **options)
    return rt.register(Answerer, Answering)


def of_type(rt: Runtime, cls: type) -> list[Any]:
    return [env.event for env in rt.read_all(types=[cls])]


# -- NATS ----------------------------------------------------------------------------------


def stream_of(service: str) -> str:
    """The JetStream stream of a service on this run's bus."""
    return f"REACTOR-{BUS}_{service}"


def subject_of(service: str, type_name: str) -> str:
    return f"reactor-{BUS}.{service}.{type_name}"


def on_nats(work: Callable[[Any], Coroutine[Any, Any, Any]]) -> Any:
    """Run `work(js)` on a connection of its own (a test's look behind the runtime)."""

    async def run() -> Any:
        nc = await nats.connect("nats://127.0.0.1:4222")
        try:
            return await work(nc.jetstream())
        finally:
            await nc.close()

    return asyncio.run(run())


def delete_streams(streams: list[str]) -> None:
    async def delete(js: Any) -> None:
        for stream in streams:
            with contextlib.suppress(NotFoundError):
                await js.delete_stream(stream)

    on_nats(delete)


@pytest.fixture
def services() -> Iterator[Callable[[str], str]]:
    """Unique service names (`services("orders")`); their streams are deleted after."""
    made: list[str] = []
    run = uuid.uuid4().hex[:8]

    def name(role: str) -> str:
        made.append(f"t{run}-{role}")
        return made[-1]

    yield name
    if nats_up():
        delete_streams([stream_of(s) for s in made])


# -- a TCP proxy in front of NATS ----------------------------------------------------------


class Proxy:
    """Forwards a local port to NATS while started; `stop()` closes every connection and
    refuses new ones (NATS out of reach), `start()` serves on the same port again."""

    def __init__(self, target: tuple[str, int] = ("127.0.0.1", 4222)) -> None:
        self.target = target
        self.port = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}/{BUS}"

    def start(self) -> Proxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self.port = listener.getsockname()[1]
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, args=(listener,), name="test-proxy")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _serve(self, listener: socket.socket) -> None:
        selector = selectors.DefaultSelector()
        selector.register(listener, selectors.EVENT_READ)
        peers: dict[socket.socket, socket.socket] = {}
        try:
            while not self._stop.is_set():
                for key, _ in selector.select(timeout=0.05):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    if sock is listener:
                        client, _ = listener.accept()
                        upstream = socket.create_connection(self.target)
                        peers[client], peers[upstream] = upstream, client
                        selector.register(client, selectors.EVENT_READ)
                        selector.register(upstream, selectors.EVENT_READ)
                        continue
                    data = b""
                    try:
                        data = sock.recv(65536)
                        if data:
                            peers[sock].sendall(data)
                    except OSError:
                        data = b""
                    if not data:
                        other = peers.pop(sock)
                        peers.pop(other, None)
                        for s in (sock, other):
                            selector.unregister(s)
                            s.close()
        finally:
            for s in [listener, *peers]:
                s.close()
            selector.close()


# -- a service in a subprocess, until it is killed ---------------------------------------------


def main(role: str, url: str, service: str, peer: str, bus: str, upto: str = "100000") -> None:
    """Asker: asks 1, 2, ... (from where its journal stands), printing each acknowledged
    question. Answerer: serves until killed. `peer` is unused (the other service)."""
    if role == "answerer":
        with answerer(url, service, bus):
            threading.Event().wait()
    with asker(url, service, bus) as rt:
        n = len(of_type(rt, Asked))
        while n < int(upto):
            n += 1
            rt.send(Ask(n))
            print(n, flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main(*sys.argv[1:])
