"""The NATS connection of one runtime: an asyncio event loop on a thread of its own, the
nats-py client on it (one per runtime, reconnecting for ever), and the way the outbox and
inbox threads hand it coroutines.

It is "up" when the client is connected and every set-up step (`on_up`: the exporter's
stream, the importer's consumers) has run since; the steps run again after a reconnect.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from nats.aio.client import Client
from nats.js import JetStreamContext

from reactor.errors import ReactorError

log = logging.getLogger(__name__)
T = TypeVar("T")
RETRY_SET_UP = 1.0  # seconds between attempts at a set-up step that failed
PING_INTERVAL = 5  # seconds: a silent, dead connection is noticed within ~3 pings


class BusUnavailable(ReactorError, ConnectionError):
    """NATS cannot be reached, or did not answer in time: the call can be tried again."""


class Connection:
    """One nats-py client on an event loop thread. Thread-safe: `call` and `spawn` may be
    used from any thread but the loop's own."""

    def __init__(self, servers: tuple[str, ...], name: str) -> None:
        self.servers, self.name = servers, name
        self.url = ", ".join(servers)
        self.up = threading.Event()  # connected, and set up since
        self.error: str | None = None  # the last connection error, while not up
        self.on_up: list[Callable[[], Awaitable[None]]] = []  # set-up steps, in order
        self.on_change: list[Callable[[], None]] = []  # told (on the loop) when up or down
        self._client = Client()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"reactor-bus-{name}", daemon=True
        )
        self._tasks: set[asyncio.Task[Any]] = set()
        self._tried = threading.Event()  # the first attempt to connect ended, either way
        self._down = asyncio.Event()  # on the loop: set while not up
        self._down.set()

    @property
    def client(self) -> Client:
        """The nats-py client (use it on the loop only)."""
        return self._client

    @property
    def js(self) -> JetStreamContext:
        """The JetStream context (use it on the loop only)."""
        return self._client.jetstream()

    async def down(self) -> None:
        """Return once the connection is not up (at once if it is not)."""
        await self._down.wait()

    def start(self, wait: float) -> bool:
        """Start the loop and connecting; wait up to `wait` seconds for the first attempt.
        Whether it is up (if not, it goes on trying in the background)."""
        self._thread.start()
        self.spawn(self._connect())
        self._tried.wait(wait)
        return self.up.is_set()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run `coro` on the loop and wait for its result; `BusUnavailable` after `timeout`."""
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise BusUnavailable(f"NATS at {self.url} did not answer within {timeout:g}s") from None

    async def request(self, subject: str, payload: str, timeout: float = 5.0) -> bytes:
        """A request's reply data (on the loop)."""
        reply = await self._client.request(subject, payload.encode(), timeout=timeout)
        return reply.data

    def resolve(self, future: asyncio.Future[T], value: T) -> None:
        """Set the result of a future of the loop from another thread (unless cancelled)."""
        self._loop.call_soon_threadsafe(_settle, future, value)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run `coro` as a task on the loop (cancelled at `stop`); a raise is logged."""
        self._loop.call_soon_threadsafe(self._spawn, coro)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("bus %s: a task failed", self.name, exc_info=task.exception())

    async def _connect(self) -> None:
        await self._client.connect(
            servers=list(self.servers),
            name=f"reactor {self.name}",
            max_reconnect_attempts=-1,  # the first attempts too: a server down at start
            reconnect_time_wait=1,
            connect_timeout=2,
            ping_interval=PING_INTERVAL,
            max_outstanding_pings=3,
            error_cb=self._failed,
            disconnected_cb=self._disconnected,
            reconnected_cb=self._reconnected,
        )
        await self._set_up()

    async def _set_up(self) -> None:
        """Run the set-up steps until they all pass (while connected), then say it is up."""
        while self._client.is_connected:
            try:
                for step in self.on_up:
                    await step()
            except Exception as e:
                check_cancelled()
                self.error = f"set-up failed: {type(e).__name__}: {e}"
                log.warning("bus %s: %s (trying again)", self.name, self.error)
                self._tried.set()
                await asyncio.sleep(RETRY_SET_UP)
                continue
            if self._client.is_connected:
                self.error = None
                self._down.clear()
                self.up.set()
                self._tried.set()
                self._changed()
            return

    async def _failed(self, error: Exception) -> None:
        if self.error is None:
            log.warning("bus %s: NATS at %s: %s", self.name, self.url, error or type(error))
        self.error = f"{type(error).__name__}: {error}"
        self._tried.set()

    async def _disconnected(self) -> None:
        if self.up.is_set() and not self._client.is_closed:
            log.warning("bus %s: disconnected from NATS at %s", self.name, self.url)
        self.up.clear()
        self._down.set()
        self.error = self.error or "disconnected"
        self._changed()

    async def _reconnected(self) -> None:
        log.warning("bus %s: reconnected to NATS at %s", self.name, self.url)
        self._spawn(self._set_up())

    def _changed(self) -> None:
        for fn in self.on_change:
            fn()

    def stop(self, timeout: float) -> None:
        """Cancel the tasks, close the client, stop the loop and its thread."""
        if not self._thread.is_alive():
            return
        try:
            self.call(self._shut_down(), timeout)
        except BusUnavailable:
            log.warning("bus %s: the NATS client did not close within %.1fs", self.name, timeout)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self._loop.close()
        self.up.clear()

    async def _shut_down(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            await self._client.close()
        except Exception as e:  # closing a client that never connected
            log.debug("bus %s: closing the client: %r", self.name, e)
        current = asyncio.current_task()
        rest = [t for t in asyncio.all_tasks() if t is not current]
        for task in rest:  # the client's own, if a cancelled connect left any
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)
        await asyncio.get_running_loop().shutdown_default_executor()  # name lookups ran there


def check_cancelled() -> None:
    """Raise `CancelledError` if the running task was asked to stop. For handlers of
    `Exception`: nats-py sometimes turns a cancellation into another error (a closed
    connection), and `asyncio.wait_for` can swallow one (Python 3.11)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _settle(future: asyncio.Future[T], value: T) -> None:
    if not future.done():
        future.set_result(value)
