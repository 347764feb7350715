"""The Prometheus face of `Metrics` (the `metrics` extra): a custom collector on a registry
of the runtime's own (never prometheus-client's global one), the text exposition, the HTTP
endpoint at `/metrics`, and the parser that reads it back (for `reactor top`).
"""

from __future__ import annotations

import errno
import socket
import threading
from collections.abc import Iterable, Mapping
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from reactor.errors import ReactorError
from reactor.metrics import FAMILIES, Family, Histogram, Metrics, MissingExtra, Value

try:
    import prometheus_client
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
    )
    from prometheus_client.parser import text_string_to_metric_families
    from prometheus_client.utils import floatToGoString
except ImportError as e:
    raise MissingExtra(
        "Prometheus metrics need prometheus-client: pip install 'reactor-actors[metrics]'"
    ) from e


class PortInUse(ReactorError, OSError):
    """The metrics port is taken by another process (or another runtime)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        super().__init__(
            f"metrics port {port} on {host} is already in use: choose another metrics_port, "
            "or 0 for any free one (read it back as rt.metrics_port)"
        )


_KINDS: dict[str, Any] = {
    "counter": CounterMetricFamily,
    "gauge": GaugeMetricFamily,
    "histogram": HistogramMetricFamily,
}


def collector_registry(metrics: Metrics) -> prometheus_client.CollectorRegistry:
    """A new prometheus-client registry holding a collector of `metrics` and one of the
    process (CPU, memory, open files): one per runtime, so two runtimes never clash."""
    registry = prometheus_client.CollectorRegistry(auto_describe=False)
    registry.register(_Collector(metrics))
    prometheus_client.ProcessCollector(registry=registry)
    return registry


def exposition(metrics: Metrics) -> str:
    """`metrics` in the Prometheus text format, as `/metrics` serves it."""
    return prometheus_client.generate_latest(collector_registry(metrics)).decode()


def serve(metrics: Metrics, port: int = 0, host: str = "127.0.0.1") -> MetricsServer:
    """Serve `metrics` at `http://host:port/metrics` (port 0: any free one) until `stop()`;
    `PortInUse` if the port is taken."""
    return MetricsServer(metrics, port, host)


class _Collector:
    """A prometheus-client custom collector: each scrape turns a snapshot into families."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        snapshot = self.metrics.snapshot()
        for family in FAMILIES.values():
            if family.name not in snapshot or not family.exported:
                continue
            metric = _KINDS[family.type](family.name, family.help, labels=family.labels)
            for labels, value in _by_labels(family, snapshot[family.name]):
                if isinstance(value, Histogram):
                    buckets = [(_le(le), n) for le, n in value.cumulative()]
                    metric.add_metric(labels, buckets, value.sum)
                else:
                    metric.add_metric(labels, value)
            yield metric


def _by_labels(family: Family, value: Value) -> list[tuple[list[str], Value]]:
    if not family.labels:
        return [([], value)]
    return [([*k] if isinstance(k, tuple) else [k], v) for k, v in sorted(value.items())]


def parse_exposition(text: str) -> dict[str, Value]:
    """Prometheus text from a `/metrics` endpoint back in `snapshot()` form (the reactor_*
    families only), with prometheus-client's parser."""
    out: dict[str, Value] = {}
    for parsed in text_string_to_metric_families(text):
        family = FAMILIES.get(parsed.name) or FAMILIES.get(f"{parsed.name}_total")
        if family is None:
            continue
        values: dict[Any, Value] = {}
        if family.type == "histogram":
            values = _histograms(family, parsed.samples)
        else:
            for s in parsed.samples:
                if s.name == family.name:
                    values[_key(family, s.labels)] = _number(s.value)
        out[family.name] = values if family.labels else values.get((), 0)
    return out


def _key(family: Family, labels: Mapping[str, str]) -> Any:
    key = tuple(labels.get(n, "") for n in family.labels)
    return key[0] if len(key) == 1 else key


def _histograms(family: Family, samples: Iterable[Any]) -> dict[Any, Histogram]:
    buckets: dict[Any, list[tuple[float, float]]] = {}
    sums: dict[Any, float] = {}
    for s in samples:
        key = _key(family, s.labels)
        if s.name.endswith("_bucket"):
            buckets.setdefault(key, []).append((float(s.labels["le"]), s.value))
        elif s.name.endswith("_sum"):
            sums[key] = s.value
    out = {}
    for key, cumulative in buckets.items():
        cumulative.sort()
        previous = [0.0] + [c for _, c in cumulative[:-1]]
        counts = [int(c - p) for (_, c), p in zip(cumulative, previous, strict=True)]
        bounds = tuple(le for le, _ in cumulative[:-1])
        out[key] = Histogram(bounds, tuple(counts), sums.get(key, 0.0))
    return out


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


class _Quiet(WSGIRequestHandler):
    timeout = 5  # seconds: a stalled client holds the endpoint (and stop()) no longer

    def log_message(self, format: str, *args: Any) -> None:  # no access log on stderr
        pass


class _IPv6Server(WSGIServer):
    address_family = socket.AF_INET6


class MetricsServer:
    """An HTTP endpoint serving a `Metrics` at `/metrics` (prometheus-client's WSGI app on
    a registry of its own) from one thread of its own, until `stop()` joins it.

    One request at a time, in that thread: scrapes are rare and short, and no thread is
    started per request.
    """

    POLL = 0.05  # seconds between checks for stop(): bounds how long stop() waits

    def __init__(self, metrics: Metrics, port: int, host: str) -> None:
        app = prometheus_client.make_wsgi_app(collector_registry(metrics))
        server_class = _IPv6Server if ":" in host else WSGIServer
        try:
            self._server = make_server(host, port, app, server_class, _Quiet)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise PortInUse(host, port) from e
            raise ReactorError(f"cannot serve metrics on {host}:{port}: {e}") from e
        self.host, self.port = host, int(self._server.server_port)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            args=(self.POLL,),
            name=f"reactor-metrics-{self.port}",
            daemon=True,
        )
        self._thread.start()

    def __repr__(self) -> str:
        return f"MetricsServer({self.url})"

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving, join the thread and close the socket (idempotent). A request being
        served is finished first (a stalled client is cut off after 5 seconds)."""
        self._server.shutdown()
        self._thread.join(timeout)
        self._server.server_close()


def _le(bound: float) -> str:
    """A bucket bound as Prometheus writes it (`+Inf`, `0.005`)."""
    text: str = floatToGoString(bound)  # type: ignore[no-untyped-call]
    return text
