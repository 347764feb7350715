"""The bus options as the Runtime checks them, the names they give on NATS, and the headers
an event travels with (no NATS server needed)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reactor import Runtime
from reactor.bus import bus_config
from reactor.bus.config import local_stream, type_tokens
from reactor.bus.wire import Incoming, WireError, headers
from reactor.registry import default_registry
from reactor.store.base import StoredEvent
from tests.test_bus_support import Answered, Asked, Noted

BUS = "nats://127.0.0.1:4222"


def test_a_bus_needs_a_service() -> None:
    """`bus` without `service` is refused, naming both."""
    with pytest.raises(ValueError, match=r"bus=.*service="):
        Runtime("memory://", bus=BUS)


def test_imports_need_a_bus() -> None:
    """`imports` without `bus` is refused: there is nothing to import from."""
    with pytest.raises(ValueError, match=r"imports=.*bus="):
        Runtime("memory://", imports=[Asked])


@pytest.mark.parametrize("service", ["", "a.b", "a b", "a*", "x>", "a/b", "é", "x" * 65, 7])
def test_a_service_name_must_fit_a_stream_name(service: object) -> None:
    """A service name NATS would not take in a stream name or a subject is refused."""
    with pytest.raises(ValueError, match=r"service=.*letters, digits"):
        Runtime("memory://", service=service, bus=BUS)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bus", ["http://127.0.0.1:4222", "nats//127.0.0.1:4222", "nats://", "nats://h:port", 4222]
)
def test_a_bus_url_must_be_a_nats_url(bus: object) -> None:
    """A URL that is not nats:// or tls:// with a host (and a numeric port) is refused."""
    with pytest.raises(ValueError, match=r"Runtime\(bus="):
        Runtime("memory://", service="s", bus=bus)  # type: ignore[arg-type]


def test_several_servers_and_tls_are_urls() -> None:
    """Servers separated by commas, nats:// or tls://, make one bus."""
    config = bus_config("s", "nats://a:4222, tls://b:4443", [], default_registry)
    assert config is not None and config.servers == ("nats://a:4222", "tls://b:4443")
    assert config.namespace == ""


def test_a_path_names_a_bus_of_its_own() -> None:
    """The same path on every server names the bus: its streams and subjects."""
    config = bus_config("pay", "nats://a:4222/shop-1,nats://b:4222/shop-1/", [], default_registry)
    assert config is not None and config.servers == ("nats://a:4222", "nats://b:4222")
    assert (config.namespace, config.stream) == ("shop-1", "REACTOR-shop-1_pay")
    assert config.subject("shop.Paid") == "reactor-shop-1.pay.shop.Paid"
    for bus in ("nats://a:4222/x,nats://b:4222/y", "nats://a:4222/a/b", "nats://a:4222/a.b"):
        with pytest.raises(ValueError, match="a path names a bus"):
            Runtime("memory://", service="s", bus=bus)


def test_imports_are_integration_events_by_class_or_name() -> None:
    """Classes and stored names of kind "integration" are taken; a domain event, an unknown
    name or something else is refused, saying why."""
    config = bus_config("s", BUS, [Asked, "bustest.Answered"], default_registry)
    assert config is not None
    assert config.imports == {"bustest.Asked", "bustest.Answered"}
    with pytest.raises(ValueError, match=r"domain event.*kind='integration'"):
        Runtime("memory://", service="s", bus=BUS, imports=[Noted])
    with pytest.raises(ValueError, match=r"no event type is registered as 'no.Such'"):
        Runtime("memory://", service="s", bus=BUS, imports=["no.Such"])
    with pytest.raises(ValueError, match=r"not an event type"):
        Runtime("memory://", service="s", bus=BUS, imports=[int])
    with pytest.raises(ValueError, match=r"event classes and type names, got 3"):
        Runtime("memory://", service="s", bus=BUS, imports=[3])  # type: ignore[list-item]


def test_the_names_on_nats() -> None:
    """Stream per service, subject per type (tokens made legal), a durable per imported
    set, imported streams named after their source."""
    config = bus_config("pay-1", BUS, [Asked], default_registry)
    assert config is not None
    assert config.stream == "REACTOR_pay-1"
    assert config.subject("shop.OrderPlaced") == "reactor.pay-1.shop.OrderPlaced"
    assert config.subject("shop.Paid", "orders") == "reactor.orders.shop.Paid"
    assert config.subjects_of("orders") == "reactor.orders.>"
    assert type_tokens("odd name>*..x") == "odd_name__._.x"
    assert re.fullmatch(r"pay-1-[0-9a-f]{8}", config.durable)
    other = bus_config("pay-1", BUS, [Asked, Answered], default_registry)
    assert other is not None and other.durable != config.durable
    assert local_stream("orders", "Order-o1") == "orders/Order-o1"


ids = st.text(min_size=1, max_size=30)


@given(stream_id=ids, correlation=st.none() | ids, causation=st.none() | ids)
def test_headers_carry_an_event_there_and_back(
    stream_id: str, correlation: str | None, causation: str | None
) -> None:
    """Whatever the characters of a stream id or an id, the headers give them back."""
    stored = StoredEvent(
        "e1", stream_id, 3, 17, "bustest.Asked", 2, b'{"n":1}', 1.5, None, correlation, causation
    )
    found = headers("orders", stored)
    assert all("\r" not in v and "\n" not in v for v in found.values())
    incoming = Incoming.of(found, stored.data)
    assert (incoming.event_id, incoming.type, incoming.version) == ("e1", "bustest.Asked", 2)
    assert (incoming.service, incoming.stream_id, incoming.seq) == ("orders", stream_id, 3)
    assert (incoming.correlation_id, incoming.causation_id) == (correlation, causation)
    assert incoming.metadata() == {"source": "orders", "source_stream": stream_id, "source_seq": 3}


def test_a_message_without_reactor_headers_is_refused() -> None:
    """Missing or malformed headers are a `WireError` naming them."""
    with pytest.raises(WireError, match="Nats-Msg-Id, Reactor-Type"):
        Incoming.of({"Reactor-Version": "1"}, b"{}")
    good = headers("s", StoredEvent("e", "S", 1, 1, "t", 1, b"{}", 0.0, None, None, None))
    with pytest.raises(WireError, match="Reactor-Version is 'x'"):
        Incoming.of({**good, "Reactor-Version": "x"}, b"{}")
