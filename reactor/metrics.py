"""`Metrics`: the runtime's always-on counters, gauges and latency histograms, read as a
plain dict (`snapshot()`); `reactor.prometheus` serves them (the `metrics` extra).

Recording is plain Python on ints, floats, dicts and lists, cheap enough for the command
path (perf/metrics.py): no lock, no prometheus-client object.
"""

from __future__ import annotations

import heapq
import importlib
import logging
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from types import ModuleType
from typing import Any, Literal

import attrs

from reactor.errors import ReactorError, Rejected, Timeout

log = logging.getLogger(__name__)

OUTCOMES = ("ok", "rejected", "failed", "timed_out")
# Seconds, in 1-2-5 steps: a durable command takes ~220 us, a commit as much, a stuck one seconds.
LATENCY_BUCKETS = (*(m * 10.0**e for e in range(-5, 1) for m in (1, 2, 5)), 10.0)
BATCH_BUCKETS = tuple(float(2**i) for i in range(12))  # appends per commit: 1 .. 2048
DEEPEST = 5  # mailboxes named in snapshot()["reactor_mailbox_deepest"]
Value = Any  # a number, a Histogram, or a dict of them by label value (a tuple for several)


class MissingExtra(ReactorError, ImportError):
    """An optional dependency (an extra of reactor-actors) is not installed."""


def import_extra(module: str, extra: str, feature: str) -> ModuleType:
    """Import an optional dependency; `MissingExtra` saying which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingExtra(
            f"{feature} needs {module.partition('.')[0]}: pip install 'reactor-actors[{extra}]'"
        ) from e


def outcome_of(error: BaseException | None, *, abandoned: bool = False) -> str:
    """A command's outcome label: ok, rejected (the domain said no), timed_out (`Timeout`,
    or the caller gave up waiting before the answer: `abandoned`) or failed."""
    if abandoned or isinstance(error, Timeout):
        return "timed_out"
    if error is None:
        return "ok"
    return "rejected" if isinstance(error, Rejected) else "failed"


@attrs.frozen
class Family:
    """One metric family: Prometheus name, type, help text, label names, and where its
    values come from: `recorded` by the runtime's calls, `read` at snapshot time from a
    callback (`Metrics.on_scrape`), or `derived` from other values."""

    name: str
    type: Literal["counter", "gauge", "histogram"]
    help: str
    labels: tuple[str, ...] = ()
    source: Literal["recorded", "read", "derived"] = "recorded"
    exported: bool = True  # False: in snapshot() only (a label of unbounded cardinality)


FAMILIES = {
    f.name: f
    for f in (
        Family("reactor_commands_total", "counter", "Commands answered, by type and outcome.",
               ("type", "outcome")),
        Family("reactor_command_seconds", "histogram",
               "Seconds from routing a command to its answer.", ("type",)),
        Family("reactor_events_appended_total", "counter", "Events appended to the journal."),
        Family("reactor_commit_seconds", "histogram", "Seconds per journal commit."),
        Family("reactor_commit_batch_size", "histogram", "Appends per journal commit."),
        Family("reactor_retries_total", "counter", "Handler retries scheduled.", ("handler",)),
        Family("reactor_dead_letters_total", "counter", "Events dead-lettered.", ("handler",)),
        Family("reactor_restarts_total", "counter", "Actor restarts ordered.", ("supervisor",)),
        Family("reactor_snapshots_total", "counter", "Aggregate snapshots taken.", ("aggregate",)),
        Family("reactor_journal_head", "gauge", "Position of the last event committed.",
               source="read"),
        Family("reactor_consumer_position", "gauge",
               "Position up to which a consumer has handled every event of its types.",
               ("consumer",), "read"),
        Family("reactor_consumer_lag", "gauge", "Positions a consumer is behind the head.",
               ("consumer",), "derived"),
        Family("reactor_dead_letters_stored", "gauge", "Dead letters waiting in the journal.",
               ("handler",), "read"),
        Family("reactor_aggregates_live", "gauge", "Aggregate actors alive.", source="read"),
        Family("reactor_aggregates_started_total", "counter", "Aggregate actors started.",
               source="read"),
        Family("reactor_aggregates_passivated_total", "counter", "Aggregate actors passivated.",
               source="read"),
        Family("reactor_mailbox_depth", "gauge", "Messages waiting in mailboxes, by actor kind.",
               ("kind",), "derived"),
        Family("reactor_mailbox_depth_max", "gauge", "The deepest mailbox of each actor kind.",
               ("kind",), "derived"),
        Family("reactor_mailbox_deepest", "gauge", "The deepest mailboxes, by actor.",
               ("actor",), "derived", exported=False),
    )
}  # fmt: skip


@attrs.frozen
class Histogram:
    """A histogram's value: `counts[i]` observations in bucket i (at most `bounds[i]`, above
    `bounds[i - 1]`; the last bucket is above every bound) and their `sum`.

    Two values subtract (what happened between two scrapes) and add (several label sets).
    """

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    sum: float = 0.0

    @property
    def count(self) -> int:
        return sum(self.counts)

    def quantile(self, q: float) -> float | None:
        """An estimate of the q-quantile (0 < q <= 1), interpolated linearly inside its
        bucket as Prometheus' `histogram_quantile` does; None when empty. O(buckets)."""
        rank, seen = q * self.count, 0
        for i, n in enumerate(self.counts):
            if n and seen + n >= rank:
                if i == len(self.bounds):  # above every bound: the largest one is all we know
                    return self.bounds[-1]
                lower = self.bounds[i - 1] if i else 0.0
                return lower + (self.bounds[i] - lower) * (rank - seen) / n
            seen += n
        return None

    def cumulative(self) -> list[tuple[float, int]]:
        """`(le, observations <= le)` per bucket, the last with le = +Inf (Prometheus' form)."""
        total, out = 0, []
        for le, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += n
            out.append((le, total))
        return out

    def __add__(self, other: Histogram) -> Histogram:
        counts = tuple(a + b for a, b in zip(self.counts, other.counts, strict=True))
        return Histogram(self.bounds, counts, self.sum + other.sum)

    def __sub__(self, other: Histogram) -> Histogram:
        counts = tuple(a - b for a, b in zip(self.counts, other.counts, strict=True))
        return Histogram(self.bounds, counts, self.sum - other.sum)


class _Buckets:
    """A histogram being recorded (see `Metrics` on why no lock is needed)."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds, self.counts, self.sum = bounds, [0] * (len(bounds) + 1), 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def value(self) -> Histogram:
        return Histogram(self.bounds, tuple(self.counts), self.sum)


class _CommandType:
    __slots__ = ("latency", "outcomes")

    def __init__(self) -> None:
        self.outcomes = dict.fromkeys(OUTCOMES, 0)
        self.latency = _Buckets(LATENCY_BUCKETS)


def _count(counts: dict[str, int], key: str) -> None:
    if key not in counts:
        counts.setdefault(key, 0)
    counts[key] += 1


Mailboxes = Callable[[], Iterable[tuple[str, str, int]]]  # (kind, actor name, depth)


class Metrics:
    """The instruments of one runtime: `record_*` calls from its actors, callbacks read at
    `snapshot()` time (`on_scrape*`), and `snapshot()`, a plain dict of every value.

    `record_*` take no lock and are safe from any thread under CPython's GIL: each update is
    `d[k] += 1`, `list[i] += 1` or `obj.sum += x` on a built-in container, and CPython
    (3.11 to 3.13) only switches threads where it checks its eval breaker (function entry,
    backward jumps, after calls), never between the load, add and store of one of those;
    tests/test_metrics.py hammers it from 8 threads with a 1 us switch interval. On a
    free-threaded build (no GIL) a concurrent increment may be lost: counts are approximate.
    """

    def __init__(self) -> None:
        self._commands: dict[str, _CommandType] = {}
        self._appended = [0]
        self._commit_seconds = _Buckets(LATENCY_BUCKETS)
        self._commit_batch = _Buckets(BATCH_BUCKETS)
        self._counts: dict[str, dict[str, int]] = {  # recorded counters with one label
            name: {}
            for name, f in FAMILIES.items()
            if f.source == "recorded" and f.type == "counter" and len(f.labels) == 1
        }
        self._read: dict[str, Callable[[], Value]] = {}
        self._mailboxes: Mailboxes | None = None

    # -- recording (the hot path) -----------------------------------------------------------

    def record_command(self, type_name: str, outcome: str, seconds: float) -> None:
        """A command of class `type_name` was answered with `outcome` (see `outcome_of`),
        `seconds` after it was routed. `KeyError` for an unknown outcome."""
        series = self._commands.get(type_name)
        if series is None:
            series = self._commands.setdefault(type_name, _CommandType())
        series.outcomes[outcome] += 1
        series.latency.observe(seconds)

    def record_answer(
        self, type_name: str, error: BaseException | None, seconds: float, abandoned: bool = False
    ) -> None:
        """`record_command` with the outcome of `error` (see `outcome_of`): what an
        aggregate actor calls as it answers (once per command: `observe` inlined)."""
        series = self._commands.get(type_name)
        if series is None:
            series = self._commands.setdefault(type_name, _CommandType())
        ok = error is None and not abandoned
        series.outcomes["ok" if ok else outcome_of(error, abandoned=abandoned)] += 1
        latency = series.latency
        latency.counts[bisect_left(latency.bounds, seconds)] += 1
        latency.sum += seconds

    def record_commit(self, appends: int, events: int, seconds: float) -> None:
        """The journal committed `appends` (and checkpoints) in one transaction of `seconds`,
        storing `events` new events."""
        self._appended[0] += events
        batch, latency = self._commit_batch, self._commit_seconds
        batch.counts[bisect_left(batch.bounds, appends)] += 1
        batch.sum += appends
        latency.counts[bisect_left(latency.bounds, seconds)] += 1
        latency.sum += seconds

    def record_retry(self, handler: str) -> None:
        """A consumer (projection, saga or subscriber label) scheduled another attempt."""
        _count(self._counts["reactor_retries_total"], handler)

    def record_dead_letter(self, handler: str) -> None:
        """A consumer gave up on an event and dead-lettered it."""
        _count(self._counts["reactor_dead_letters_total"], handler)

    def record_restart(self, supervisor: str) -> None:
        """A supervisor ordered a restart (of one child or several: one restart)."""
        _count(self._counts["reactor_restarts_total"], supervisor)

    def record_snapshot(self, aggregate: str) -> None:
        """An aggregate actor took a snapshot of its state."""
        _count(self._counts["reactor_snapshots_total"], aggregate)

    # -- values read when asked --------------------------------------------------------------

    def on_scrape(self, name: str, read: Callable[[], Value]) -> None:
        """Read family `name` (one of source "read" in `FAMILIES`) from `read()` at every
        snapshot: a number, or a dict by label value. It runs on the scraping thread (the
        HTTP server's, or `snapshot()`'s caller): it must only read. A raise is logged and
        the family left out of that snapshot."""
        family = FAMILIES.get(name)
        if family is None or family.source != "read":
            readable = sorted(n for n, f in FAMILIES.items() if f.source == "read")
            raise ReactorError(f"{name!r} is not read by callback; those are: {readable}")
        self._read[name] = read

    def on_scrape_mailboxes(self, read: Mailboxes) -> None:
        """Read `(kind, actor name, depth)` of every mailbox at every snapshot: it gives
        `reactor_mailbox_depth{kind}` (the sum), `_max{kind}` and the deepest by name."""
        self._mailboxes = read

    def snapshot(self) -> dict[str, Value]:
        """Every value now: metric name -> number, `Histogram`, or dict by label value (a
        tuple for several labels). Reads the callbacks; O(command types + mailboxes)."""
        commands = dict(self._commands)
        out: dict[str, Value] = {
            "reactor_commands_total": {
                (t, o): n for t, c in commands.items() for o, n in dict(c.outcomes).items()
            },
            "reactor_command_seconds": {t: c.latency.value() for t, c in commands.items()},
            "reactor_events_appended_total": self._appended[0],
            "reactor_commit_seconds": self._commit_seconds.value(),
            "reactor_commit_batch_size": self._commit_batch.value(),
        }
        out.update({name: dict(counts) for name, counts in self._counts.items()})
        for name, read in dict(self._read).items():
            value = _call(name, read)
            if value is not None:
                out[name] = value
        head, positions = out.get("reactor_journal_head"), out.get("reactor_consumer_position")
        if head is not None and positions is not None:
            out["reactor_consumer_lag"] = {c: max(head - p, 0) for c, p in positions.items()}
        if self._mailboxes is not None:
            out.update(_mailbox_values(self._mailboxes))
        return out


def _call(name: str, read: Callable[[], Value]) -> Value:
    try:
        value = read()
    except Exception as e:
        log.warning("metrics: reading %s failed: %r", name, e)
        return None
    return dict(value) if isinstance(value, Mapping) else value


def _mailbox_values(read: Mailboxes) -> dict[str, Value]:
    try:
        boxes = list(read())
    except Exception as e:
        log.warning("metrics: reading mailbox depths failed: %r", e)
        return {}
    depth: dict[str, int] = {}
    deepest: dict[str, int] = {}
    for kind, _, n in boxes:
        depth[kind] = depth.get(kind, 0) + n
        deepest[kind] = max(deepest.get(kind, 0), n)
    top = heapq.nlargest(DEEPEST, boxes, key=lambda box: box[2])
    return {
        "reactor_mailbox_depth": depth,
        "reactor_mailbox_depth_max": deepest,
        "reactor_mailbox_deepest": {name: n for _, name, n in top if n},
    }
