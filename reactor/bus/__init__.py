"""The event bus between services: integration events exported to NATS JetStream by an
outbox and imported by an inbox (`Runtime(url, service=..., bus=..., imports=[...])`).

`config` checks the options and derives the names on NATS, `wire` says what a message
carries, `link` runs the bus of one runtime; `connection`, `outbox` and `inbox` need
nats-py (the extra `reactor-actors[nats]`) and are imported only when a runtime starts one.
"""

from reactor.bus.config import BusConfig, bus_config
from reactor.bus.link import BusHealth, BusLink, Host, Link

__all__ = ["BusConfig", "BusHealth", "BusLink", "Host", "Link", "bus_config"]
