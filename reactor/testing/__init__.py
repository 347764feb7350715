"""Testing kit: given/when/then for aggregates and projections, without actors, and a
pytest fixture giving a started memory Runtime.

    fixture = AggregateFixture(BankAccount).given(Opened("a1"))
    fixture.when(Deposit("a1", 5)).then(Deposited("a1", 5))
    fixture.when(Deposit("a1", -1)).then_rejected(match="positive")

In a conftest.py: `from reactor.testing import runtime` makes the `runtime` fixture available.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from reactor.codec import Codec
from reactor.domain import Aggregate, Projection
from reactor.errors import Rejected
from reactor.events import Envelope, decided_events, new_id
from reactor.registry import Registry, default_registry
from reactor.runtime import Runtime


class AggregateFixture:
    """Drive one aggregate class: `given` past events, `when` a command, `then` assert.

    Events are checked to round-trip through the codec, so an event that could not be
    stored fails here, not in production.
    """

    def __init__(self, aggregate: type[Aggregate], *, registry: Registry | None = None) -> None:
        self.spec = aggregate.__reactor_type__(None)
        self._codec = Codec(registry)
        self.state: Any = aggregate()
        self.events: list[Any] = []
        self.error: BaseException | None = None

    def given(self, *events: Any) -> AggregateFixture:
        """Apply past events to the state (through the appliers, as a replay would)."""
        for event in events:
            self._apply(event)
        return self

    def when(self, command: Any) -> AggregateFixture:
        """Handle `command`: its events are applied, or its exception kept for `then_*`."""
        handler = self.spec.handlers.get(type(command))
        if handler is None:
            raise AssertionError(f"{self.spec.name} has no @handles({type(command).__name__})")
        self.events, self.error = [], None
        try:
            decided = handler(self.state, command)
        except Exception as e:
            self.error = e
            return self
        self.events = decided_events(decided)
        for event in self.events:
            self._round_trip(event)
            self._apply(event)
        return self

    def then(self, *events: Any) -> AggregateFixture:
        """Assert the command succeeded and decided exactly `events`, in order."""
        if self.error is not None:
            raise AssertionError(
                f"expected events {list(events)}, but the command raised {self.error!r}"
            )
        if list(events) != self.events:
            raise AssertionError(f"expected events {list(events)}, got {self.events}")
        return self

    def then_rejected(self, match: str | None = None) -> AggregateFixture:
        """Assert the command was `Rejected` (with a message matching the regex `match`)."""
        if not isinstance(self.error, Rejected):
            got = repr(self.error) if self.error is not None else f"events {self.events}"
            raise AssertionError(f"expected Rejected, got {got}")
        if match is not None and not re.search(match, str(self.error)):
            raise AssertionError(f"Rejected({str(self.error)!r}) does not match {match!r}")
        return self

    def then_state(self, **expected: Any) -> AggregateFixture:
        """Assert attributes of the aggregate's state."""
        for name, value in expected.items():
            actual = getattr(self.state, name)
            if actual != value:
                raise AssertionError(f"expected state {name}={value!r}, got {actual!r}")
        return self

    def _apply(self, event: Any) -> None:
        applier = self.spec.appliers.get(type(event))
        if applier is not None:
            applier(self.state, event)

    def _round_trip(self, event: Any) -> None:
        name, version, data = self._codec.encode(event)
        back = self._codec.decode(name, version, data)[0]
        if back != event:
            raise AssertionError(f"{event!r} does not survive the codec: it reads back as {back!r}")


class ProjectionFixture:
    """Feed events to a projection instance as the runtime would; query it directly.

    ProjectionFixture(Balances).given(Deposited("a1", 5)).projection.balance("a1") == 5
    """

    def __init__(self, projection: type[Projection], *, registry: Registry | None = None) -> None:
        self.spec = projection.__reactor_type__(registry or default_registry)
        self._codec = Codec(registry)
        self.projection: Any = projection()
        self.position = 0

    def given(self, *events: Any, stream: str = "test-1") -> ProjectionFixture:
        for event in events:
            name, version, _ = self._codec.encode(event)
            self.position += 1
            env = Envelope(
                event_id=new_id(),
                stream_id=stream,
                seq=self.position,
                position=self.position,
                type=name,
                version=version,
                event=event,
                timestamp=datetime.now(UTC),
                correlation_id=None,
                causation_id=None,
                metadata={},
            )
            handler = self.spec.handlers.get(name)
            if handler is not None:
                handler(self.projection, event, env)
        return self


try:
    import pytest
except ImportError:  # pragma: no cover - pytest is a test extra
    pass
else:

    @pytest.fixture
    def runtime() -> Iterator[Runtime]:
        """A started `memory://` Runtime, stopped after the test."""
        rt = Runtime("memory://")
        rt.start()
        try:
            yield rt
        finally:
            rt.stop()
