"""Wake-ups across processes for `PostgresStorage.wait_for_append`: LISTEN on a connection
of its own, opened on first use.

A notification carries the head its transaction committed (every position up to it is
committed then: appends take the head row's lock, so they commit in position order). One sent
while nobody listens is lost, so a waiter reads the head from the table once after each new
connection starts listening (`opened` counts them) and trusts the notifications from then on.
One waiting thread at a time reads the connection; the others wait on a condition it
signals. If the connection fails, waiting falls back to polling until the next wait opens a
new one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)


class Listener:
    """The LISTEN connection of one storage on `channel`; `connect()` opens a connection."""

    def __init__(self, connect: Callable[[], psycopg.Connection[Any]], channel: str) -> None:
        self._connect = connect
        self._channel = channel
        self._conn: psycopg.Connection[Any] | None = None
        self._reading = threading.Lock()  # held by the thread reading the connection
        self._woken = threading.Condition(threading.Lock())
        self.wakeups = 0  # notifications received so far
        self.head = 0  # the highest head a notification carried
        self.opened = 0  # connections opened and listening so far
        self._read_on = 0  # the listening connection the head was last read from the table on
        self._table_head = 0  # the highest head read from the table
        self.closed = False

    def start(self) -> None:
        """Listen from now on (so that a head read after this misses no wake-up)."""
        if self._conn is None and self._reading.acquire(blocking=False):
            try:
                self._open()
            finally:
                self._reading.release()

    def wait_beyond(
        self, after: int, timeout: float, read_head: Callable[[], int], poll: float
    ) -> int:
        """Block until the head is beyond `after` or `timeout` passes; the head then. The
        head is read from the table (`read_head`) when a new connection starts listening
        (what was committed before sent it nothing) and after each `poll` seconds without a
        notification (a writer that sent none); a notification's own head needs no read."""
        deadline, look = time.monotonic() + timeout, False
        while True:
            seen = self.wakeups
            self.start()
            if look or not self.listening or self.listening != self._read_on:
                read_on, head = self.listening, read_head()
                self._read_on, self._table_head = read_on, max(self._table_head, head)
            last = max(self._table_head, self.head)
            left = deadline - time.monotonic()
            if last > after or left <= 0:
                return last
            self.wait(seen, min(left, poll))
            if self.closed:
                return last
            look = self.wakeups == seen

    def wait(self, seen: int, timeout: float) -> None:
        """Return when a notification came since `wakeups` was `seen`, when the reader's turn
        is free (to take it), on close, or after `timeout` seconds."""
        if not self._reading.acquire(blocking=False):
            with self._woken:
                self._woken.wait_for(
                    lambda: self.wakeups != seen or self.closed or not self._reading.locked(),
                    timeout,
                )
            return
        try:
            if self.wakeups == seen and not self.closed:
                self._receive(timeout)
        finally:
            self._reading.release()
            with self._woken:
                self._woken.notify_all()  # a notification, or the turn, for the others

    def _receive(self, timeout: float) -> None:
        import psycopg

        conn = self._open()
        if conn is None:  # no connection: poll
            with self._woken:
                self._woken.wait_for(lambda: self.closed, timeout)
            return
        heads: list[int] = []
        try:
            for notify in conn.notifies(timeout=timeout, stop_after=1):
                heads.append(int(notify.payload) if notify.payload.isdigit() else 0)
        except psycopg.Error as e:
            log.warning("LISTEN %s: the connection failed (%s); polling until reopened", self, e)
            self._drop()
        if heads:
            with self._woken:
                self.head = max(self.head, *heads)
                self.wakeups += 1

    def _open(self) -> psycopg.Connection[Any] | None:
        """The connection, opened and listening (None if it cannot be; call with the turn)."""
        import psycopg

        if self._conn is None and not self.closed:
            conn = None
            try:
                conn = self._connect()
                conn.execute(f'LISTEN "{self._channel}"')
            except psycopg.Error as e:
                log.warning("LISTEN %s: cannot connect (%s); polling instead", self, e)
                if conn is not None:
                    conn.close()
                return None
            self._conn = conn
            self.opened += 1
        return self._conn

    @property
    def listening(self) -> int:
        """The number of the connection listening now (`opened`), 0 if none is."""
        return self.opened if self._conn is not None else 0

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def close(self) -> None:
        """Stop listening and close the connection (a reader gives its turn up in its
        timeout). Idempotent."""
        with self._woken:
            self.closed = True
            self._woken.notify_all()
        with self._reading:
            self._drop()

    def __str__(self) -> str:
        return f'"{self._channel}"'
