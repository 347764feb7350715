"""`Runtime`: what a long-running process embeds to run its aggregates and projections.

The facade of the user API, made of parts that each own one job: `RuntimeCore` (options,
life cycle, registrations), `Sending` (commands, through the `CommandRoute` seam),
`Reading` (queries, streams, subscriptions), `Operating` (health, dead letters),
`Governing` (forget, verify, the audit trail) and `Inspecting` (lineage, rebuilds). After
`stop()` no actor and no thread of it is left, and every call raises `RuntimeStopped`.
"""

from __future__ import annotations

from reactor.runtime.governing import Governing
from reactor.runtime.health import Health
from reactor.runtime.inspecting import Inspecting
from reactor.runtime.operating import Operating
from reactor.runtime.reading import Reading
from reactor.runtime.sending import Sending

__all__ = ["Health", "Runtime"]


class Runtime(Sending, Reading, Operating, Governing, Inspecting):
    """An embedded reactive runtime on the journal at `url` (`memory://`, `sqlite:///x.db`).

    Options: `registry` (default: the global one), `workers` (pool threads, default 2),
    `throughput` (messages per actor turn), `snapshot_every` (events; a class attribute
    wins), `idle_timeout` (seconds before an idle aggregate stops), `max_live` (aggregate
    actors alive at once), `timeout` (default seconds for blocking calls),
    `subscriber_workers` (threads for subscriber functions), `retry` (the RetryPolicy of
    projections and subscribers that declare none), `backlog` (pushed events a consumer
    may have waiting before it reads the journal itself instead), `max_event_bytes` (the
    largest encoded event), `lease_ttl` (on a shared journal: seconds a process holds a
    single-active consumer without renewing), `policy` (a `Policy`: who may do what; every
    call then needs a `principal=`), `master_key` (32 bytes: personal data is encrypted
    under keys it wraps), `audit` (write every command's end to the audit trail; default:
    with a policy), `cluster` (a NATS URL: this runtime is a node of the cluster sharing
    its PostgreSQL journal, each aggregate live on the node owning its shard), `node` (its
    name, default `<host>-<pid>`), `shards` (default 64, fixed per journal),
    `metrics_port` (serve `rt.metrics()` in the Prometheus format at
    `http://127.0.0.1:PORT/metrics`; 0: any free port, read back as `rt.metrics_port`;
    the `metrics` extra), `tracer_provider` (an OpenTelemetry `TracerProvider` for spans;
    default: the one the application set globally, if any). A wrong value is a
    `ValueError` naming the option.
    Use it as a context manager, or call `start()` and `stop()`.
    """
