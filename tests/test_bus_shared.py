"""A service with several processes on one PostgreSQL journal: one of them at a time exports
and imports for it (the holder of the lease `bus:<service>`); what any of them commits is
published once, in position order; when the holder stops, another takes over from its
checkpoint."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.helpers import wait_for
from tests.pg import fresh_schema, needs_server, url
from tests.test_bus_support import (
    Ask,
    asker,
    needs_nats,
    on_nats,
    services,
    stream_of,
)

pytestmark = [needs_nats, needs_server]
__all__ = ["services"]  # the fixture


@pytest.fixture
def journal() -> Iterator[str]:
    for schema in fresh_schema():
        yield url(schema)


def published(service: str) -> list[int]:
    """The questions on the service's stream, in stream order."""

    async def read(js: Any) -> list[int]:
        info = await js.stream_info(stream_of(service))
        found = []
        for seq in range(1, info.state.last_seq + 1):
            msg = await js.get_msg(stream_of(service), seq)
            if msg.headers and msg.headers.get("Reactor-Type", "").endswith("Asked"):
                found.append(json.loads(msg.data)["n"])
        return found

    return on_nats(read)


def test_one_process_exports_for_a_service_and_another_takes_over(
    journal: str, services: Callable[[str], str]
) -> None:
    name = services("asker")
    one = asker(journal, name, lease_ttl=0.5).start()
    two = asker(journal, name, lease_ttl=0.5).start()
    try:
        assert wait_for(lambda: one.health().bus.active ^ two.health().bus.active)  # type: ignore[union-attr]
        first, second = (one, two) if one.health().bus.active else (two, one)  # type: ignore[union-attr]
        for n in range(10):
            (one if n % 2 else two).send(Ask(n))
        assert wait_for(lambda: first.health().bus.outbox_backlog == 0)  # type: ignore[union-attr]
        first.stop()  # hands the lease over
        assert wait_for(lambda: second.health().bus.active, timeout=10)  # type: ignore[union-attr]
        for n in range(10, 15):
            second.send(Ask(n))
        assert wait_for(lambda: len(published(name)) >= 15, timeout=30)
        assert published(name) == list(range(15))  # once each, in position order
    finally:
        one.stop()
        two.stop()
