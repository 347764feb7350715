"""`BusConfig`: a runtime's place on the event bus (its service name, the NATS URL, the
event types it imports), checked when the Runtime is made, and the names derived from it.

Names on NATS JetStream (one stream per exporting service):

- stream `REACTOR_<service>`, subjects `reactor.<service>.>`, created by the service;
- subject of an exported event `reactor.<service>.<type name>` (the dots of a type name
  are subject tokens; a character NATS does not allow in a token becomes `_`);
- durable pull consumer of an importing service on each exporter's stream
  `<service>-<8 hex digits naming its set of imported types>`;
- an imported event lands in the local stream `<source service>/<source stream id>`.

A path in the URL names a bus of its own on the same server (`nats://host:4222/shop`): its
streams are `REACTOR-shop_<service>`, its subjects `reactor-shop.<service>.<type name>`,
and its services see only each other (a path per system, or per test run).
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

import attrs

from reactor.registry import Registry, qualified_name

SERVICE = re.compile(r"[A-Za-z0-9_-]{1,64}")  # what a JetStream stream name may hold
NAMESPACE = re.compile(r"[A-Za-z0-9_-]{1,32}")
_NOT_IN_TOKEN = re.compile(r"[^A-Za-z0-9_\-.]")  # what a subject token may not hold
SCHEMES = ("nats", "tls")


@attrs.frozen(kw_only=True)
class BusConfig:
    """This runtime's service on the bus: `service`, the `url` as given, its `servers`
    (without the path), the `namespace` (the path, "" for none) and the imported types."""

    service: str
    url: str
    servers: tuple[str, ...]
    namespace: str = ""
    imports: frozenset[str] = frozenset()

    @property
    def root(self) -> str:
        """The first token of every subject on this bus."""
        return f"reactor-{self.namespace}" if self.namespace else "reactor"

    @property
    def stream(self) -> str:
        """The JetStream stream this service exports to."""
        return self.stream_of(self.service)

    @property
    def durable(self) -> str:
        """The name of this service's consumer on each exporter's stream: one per set of
        imported types (a new set reads each exporter's stream from its start again)."""
        digest = hashlib.sha256("\n".join(sorted(self.imports)).encode()).hexdigest()
        return f"{self.service}-{digest[:8]}"

    def stream_of(self, service: str) -> str:
        """The JetStream stream of an exporting service on this bus."""
        return f"REACTOR-{self.namespace}_{service}" if self.namespace else f"REACTOR_{service}"

    def subjects_of(self, service: str) -> str:
        """The subjects of a service's stream."""
        return f"{self.root}.{service}.>"

    def subject(self, type_name: str, service: str | None = None) -> str:
        """The subject events of `type_name` are exported on (by this or another service)."""
        return f"{self.root}.{service or self.service}.{type_tokens(type_name)}"


def type_tokens(type_name: str) -> str:
    """A type name as the last tokens of a subject."""
    return ".".join(_NOT_IN_TOKEN.sub("_", t) or "_" for t in type_name.split("."))


def local_stream(service: str, stream_id: str) -> str:
    """The local stream an event imported from `stream_id` of `service` is appended to."""
    return f"{service}/{stream_id}"


def bus_config(
    service: str | None,
    bus: str | None,
    imports: Iterable[type | str] | None,
    registry: Registry,
) -> BusConfig | None:
    """The bus configuration of `Runtime(service=..., bus=..., imports=...)`, or None
    without a bus. Raises `ValueError` naming the option for a wrong value."""
    wanted = list(imports or ())
    if bus is None:
        if wanted:
            raise ValueError(
                "Runtime(imports=...) takes events from other services over the bus: give "
                "bus='nats://host:4222' and service='<name>' too"
            )
        return None
    if service is None:
        raise ValueError(
            f"Runtime(bus={bus!r}) needs service='<name>' too: the service names this "
            "runtime's stream and consumers on the bus"
        )
    if not isinstance(service, str) or not SERVICE.fullmatch(service):
        raise ValueError(
            f"Runtime(service=...) must be 1 to 64 letters, digits, '_' or '-' (it names a "
            f"NATS stream), got {service!r}"
        )
    servers, namespace = _servers(bus)
    if importlib.util.find_spec("nats") is None:
        raise ValueError("Runtime(bus=...) needs nats-py: pip install 'reactor-actors[nats]'")
    names = frozenset(_imported(entry, registry) for entry in wanted)
    return BusConfig(service=service, url=bus, servers=servers, namespace=namespace, imports=names)


def _servers(bus: object) -> tuple[tuple[str, ...], str]:
    """The server URLs of `bus` without their path, and the path (the namespace)."""
    if not isinstance(bus, str):
        raise ValueError(f"Runtime(bus=...) must be a NATS URL string, got {bus!r}")
    servers, paths = [], set()
    for server in bus.split(","):
        try:
            parts = urlsplit(server.strip())
            parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
        except ValueError as e:
            raise ValueError(f"Runtime(bus={bus!r}): {server!r} is not a URL: {e}") from None
        if parts.scheme not in SCHEMES or not parts.hostname:
            raise ValueError(
                f"Runtime(bus={bus!r}): {server.strip()!r} is not a NATS URL; write it as "
                "nats://host:4222 (or tls://host:4222; several separated by commas)"
            )
        servers.append(parts._replace(path="", query="", fragment="").geturl())
        paths.add(parts.path.strip("/"))
    namespace = paths.pop() if len(paths) == 1 else None
    if namespace is None or (namespace and not NAMESPACE.fullmatch(namespace)):
        raise ValueError(
            f"Runtime(bus={bus!r}): a path names a bus of its own on the server: 1 to 32 "
            "letters, digits, '_' or '-', the same for every server"
        )
    return tuple(servers), namespace


def _imported(entry: type | str, registry: Registry) -> str:
    """The type name of one `imports` entry: an event class or a registered type name, of
    kind "integration"."""
    if isinstance(entry, str):
        spec = registry.get(entry)
        shown = repr(entry)
        if spec is None:
            raise ValueError(
                f"Runtime(imports=...): no event type is registered as {shown}; import the "
                "module that declares it with @event(..., kind='integration'), or pass the class"
            )
    elif isinstance(entry, type):
        try:
            spec = registry.spec_of(entry)
        except LookupError as e:
            raise ValueError(f"Runtime(imports=...): {e}") from None
        shown = qualified_name(entry)
    else:
        raise ValueError(f"Runtime(imports=...) takes event classes and type names, got {entry!r}")
    if spec.kind != "integration":
        raise ValueError(
            f"Runtime(imports=...): {shown} is a {spec.kind} event ({spec.name!r}); only "
            "integration events cross services: declare it @event(..., kind='integration')"
        )
    return spec.name
