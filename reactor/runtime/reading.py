"""Reading: queries on projections (read-your-writes), the journal's streams, and
subscriptions of functions to committed events."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from typing import Any

from reactor.errors import ReactorError, RegistrationError
from reactor.events import Envelope
from reactor.faults import RetryPolicy
from reactor.registry import qualified_name
from reactor.runtime.core import RuntimeCore
from reactor.runtime.queries import QueryProxy
from reactor.security.policy import Principal


class Reading(RuntimeCore):
    """The reading part of `Runtime`."""

    # -- reading ------------------------------------------------------------------------------

    def query(
        self,
        projection: type,
        *,
        after: int = 0,
        timeout: float | None = None,
        principal: Principal | None = None,
    ) -> Any:
        """A proxy whose method calls run inside the projection's actor, once it has handled
        every event up to global position `after` (read-your-writes). With a policy,
        `Unauthorized` unless `principal` may query the projection class."""
        parts = self._running_parts()
        wait = self._timeout(timeout)
        running = self._consumers.projection(projection, wait)
        if running is None:
            raise RegistrationError(f"{qualified_name(projection)} is not a registered projection")
        self._gov.check(principal, "query", qualified_name(projection))
        why = parts.tree.projections.retired.get(running.spec.label)
        if why is not None:
            raise ReactorError(f"projection {running.spec.label} was stopped: it {why}")
        return QueryProxy(parts.tree.router, running.ref, running.spec, after, wait, self._running)

    def read_stream(
        self, stream_id: str, from_seq: int = 1, to_seq: int | None = None
    ) -> list[Envelope]:
        """The envelopes of one stream, in seq order."""
        return list(self.store.read_stream(stream_id, from_seq, to_seq))

    def read_all(
        self, after: int = 0, types: Collection[type | str] | None = None, limit: int | None = None
    ) -> Iterator[Envelope]:
        """Every envelope after global position `after` (of `types`), lazily, in order."""
        return self.store.read_all(after, types, limit)

    def subscribe(
        self,
        fn: Callable[[Any, Envelope], object],
        *,
        types: Collection[type | str] | None = None,
        name: str | None = None,
        from_position: int | None = None,
        retry: RetryPolicy | None = None,
        principal: Principal | None = None,
    ) -> str:
        """Call `fn(event, envelope)` for every committed event of `types` (None: all).

        With a `name` the position is checkpointed: the first start begins at the current
        head (or `from_position`), durably so before this returns, and a restart resumes
        after the checkpoint; delivery is at least once (dedupe on `envelope.event_id`).
        `fn` runs on a subscriber thread, where `rt.send` is allowed. A raise is retried by
        `retry` (default: the Runtime's), then dead-lettered under the subscriber's name.
        Returns that name. With a policy, `Unauthorized` unless `principal` may subscribe to
        each of `types` (to every type: a `*` pattern).
        """
        self._running()
        names = None if types is None else frozenset(self.registry.type_names(types))
        for resource in sorted(names) if names is not None else ["*"]:
            self._gov.check(principal, "subscribe", resource, f"subscriber {name or fn!r}")
        return self._consumers.subscribe(fn, names, name, from_position, retry)

    def _subscribe(self, fn: Callable[[Any, Envelope], object], types: Collection[str]) -> str:
        """`subscribe` for the runtime's own links (a bus's outbox): no policy applies."""
        self._running()
        return self._consumers.subscribe(fn, frozenset(types), None, None, None)
