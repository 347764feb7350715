"""`reactor top`: a live dashboard of a running runtime in the terminal (rich), read from
its metrics endpoint (`--metrics URL`) or, with only `--store URL`, from what its journal
shows. Rates come from two samples an interval apart; `--once` prints one frame.
"""

from __future__ import annotations

import argparse
import http.client
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

import attrs

from reactor.cli.common import Parents
from reactor.errors import ReactorError
from reactor.metrics import OUTCOMES, Histogram, Value, import_extra
from reactor.store import Storage, open_storage

RECENT = 1000  # events whose timestamps give the journal's append rate
WINDOW = 60.0  # seconds: the append rate is over the last minute
Rows = list[tuple[str, ...]]
Section = tuple[str, tuple[str, ...], Rows]  # a table: title, headers, rows


def add_commands(commands: Any, parents: Parents) -> None:
    top = commands.add_parser("top", help="a live dashboard of a running runtime")
    source = top.add_mutually_exclusive_group(required=True)
    source.add_argument("--metrics", metavar="URL", help="its endpoint: http://127.0.0.1:PORT")
    source.add_argument("--store", metavar="URL", help="its journal, e.g. sqlite:///bank.db")
    top.add_argument(
        "--interval", type=float, default=2.0, metavar="SECONDS", help="between samples (2)"
    )
    top.add_argument("--once", action="store_true", help="print one frame (two samples) and exit")
    top.set_defaults(run=_top)


@attrs.frozen(kw_only=True)
class Frame:
    """One screen: a title, a summary line of (label, value), and titled tables."""

    title: str
    summary: tuple[tuple[str, str], ...]
    tables: tuple[Section, ...]


@attrs.frozen
class Sample:
    """What one look at the runtime (or its journal) saw, and when (monotonic seconds)."""

    at: float
    values: dict[str, Value]


def _top(args: argparse.Namespace) -> None:
    if not args.interval > 0:
        raise ReactorError(f"--interval must be a number of seconds > 0, got {args.interval}")
    import_extra("rich", "cli", "reactor top")
    from rich.console import Console
    from rich.live import Live

    look, frame, close = _source(args)
    try:
        before = look()
        time.sleep(args.interval)  # a rate needs two samples
        after = look()
        if args.once:
            Console().print(render(frame(before, after)))
            return
        with Live(render(frame(before, after)), auto_refresh=False) as live:
            while True:
                before = after
                time.sleep(args.interval)
                after = look()
                live.update(render(frame(before, after)), refresh=True)
    except KeyboardInterrupt:
        return
    finally:
        close()


def _source(
    args: argparse.Namespace,
) -> tuple[Callable[[], Sample], Callable[[Sample, Sample], Frame], Callable[[], None]]:
    """How to take a sample, how to show two, how to let go: of an endpoint or a journal."""
    if args.metrics:
        url = metrics_url(args.metrics)
        return partial(metrics_sample, url), partial(metrics_frame, url), _nothing
    storage = open_storage(args.store, create=False)
    return partial(journal_sample, storage), partial(journal_frame, storage.url), storage.close


def _nothing() -> None:
    pass


# -- from a metrics endpoint ------------------------------------------------------------------


def metrics_url(url: str) -> str:
    """The endpoint's URL: `/metrics` unless the URL names a path; `ReactorError` for one
    that is not an http(s) URL."""
    try:
        parts = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
    except ValueError as e:
        raise ReactorError(f"--metrics {url!r} is not a URL ({e}): give http://HOST:PORT") from e
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ReactorError(f"--metrics {url!r} is not an http URL: give http://HOST:PORT")
    return parts._replace(path=parts.path if parts.path not in ("", "/") else "/metrics").geturl()


def metrics_sample(url: str) -> Sample:
    return Sample(time.monotonic(), scrape(url))


def scrape(url: str, timeout: float = 5.0) -> dict[str, Value]:
    """The runtime's metrics in `Metrics.snapshot()` form; `ReactorError` saying what to
    check if the endpoint cannot be read."""
    from reactor.prometheus import parse_exposition

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            text = response.read().decode(errors="replace")
    except (OSError, ValueError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", e)
        raise ReactorError(
            f"cannot read metrics from {url}: {reason}; check that the runtime runs with "
            "metrics_port=PORT and that the host and port are right"
        ) from e
    try:
        return parse_exposition(text)
    except ValueError as e:
        raise ReactorError(
            f"{url} does not answer in the Prometheus text format ({e}); is it the /metrics "
            "endpoint of a runtime started with metrics_port=PORT?"
        ) from e


def metrics_frame(url: str, before: Sample, after: Sample) -> Frame:
    """The dashboard of a runtime from two scrapes: rates and latency over the interval."""
    a, b, seconds = after.values, before.values, max(after.at - before.at, 1e-9)

    def rate(family: str, key: Any = None) -> float:
        now, then = a.get(family, {}), b.get(family, {})
        if key is None:
            return float(now - (then or 0)) / seconds if isinstance(now, int | float) else 0.0
        return float(now.get(key, 0) - then.get(key, 0)) / seconds

    commands = a.get("reactor_commands_total", {})
    latency = _deltas(a.get("reactor_command_seconds", {}), b.get("reactor_command_seconds", {}))
    rows: Rows = []
    for kind in sorted({t for t, _ in commands}):
        per = {o: commands.get((kind, o), 0) for o in OUTCOMES}
        total = sum(rate("reactor_commands_total", (kind, o)) for o in OUTCOMES)
        rows.append((kind, _per_s(total), *map(str, per.values()), *_quantiles(latency.get(kind))))
    everything = _sum(latency.values())
    errors = sum(rate("reactor_commands_total", k) for k in commands if k[1] != "ok")
    batches = _delta(a.get("reactor_commit_batch_size"), b.get("reactor_commit_batch_size"))
    summary = (
        ("commands", _per_s(sum(rate("reactor_commands_total", k) for k in commands))),
        ("errors", _per_s(errors)),
        *zip(("p50", "p99"), _quantiles(everything), strict=True),
        ("appends", _per_s(rate("reactor_events_appended_total"))),
        ("batch", f"{batches.sum / batches.count:.1f}" if batches and batches.count else "-"),
        ("head", str(a.get("reactor_journal_head", "-"))),
        ("aggregates live", str(a.get("reactor_aggregates_live", "-"))),
    )
    outcomes = tuple(o.replace("_", " ") for o in OUTCOMES)
    return Frame(
        title=f"reactor top: {url}",
        summary=summary,
        tables=(
            ("commands", ("type", "rate", *outcomes, "p50", "p99"), rows),
            _consumers(a, b, seconds),
            _mailboxes(a),
            ("faults", ("what", "of", "total", "new"), _faults(a, b)),
        ),
    )


def _delta(now: Histogram | None, then: Histogram | None) -> Histogram | None:
    return now - then if now is not None and then is not None else now


def _deltas(now: dict[Any, Histogram], then: dict[Any, Histogram]) -> dict[Any, Histogram]:
    return {k: _delta(h, then.get(k)) or h for k, h in now.items()}


def _sum(histograms: Iterable[Histogram]) -> Histogram | None:
    total = None
    for h in histograms:
        total = h if total is None else total + h
    return total


def _quantiles(h: Histogram | None) -> tuple[str, str]:
    if h is None:
        return "-", "-"
    p50, p99 = h.quantile(0.5), h.quantile(0.99)
    return _duration(p50), _duration(p99)


def _consumers(a: dict[str, Value], b: dict[str, Value], seconds: float) -> Section:
    positions = a.get("reactor_consumer_position", {})
    earlier, lag = b.get("reactor_consumer_position", {}), a.get("reactor_consumer_lag", {})
    rows: Rows = [
        (c, str(p), str(lag.get(c, "-")), _per_s((p - earlier.get(c, p)) / seconds))
        for c, p in sorted(positions.items())
    ]
    return ("consumers", ("consumer", "position", "lag", "rate"), rows)


def _mailboxes(a: dict[str, Value]) -> Section:
    depth, deepest = a.get("reactor_mailbox_depth", {}), a.get("reactor_mailbox_depth_max", {})
    rows: Rows = [(k, str(n), str(deepest.get(k, "-"))) for k, n in sorted(depth.items())]
    return ("mailboxes", ("kind", "waiting", "deepest"), rows)


def _faults(a: dict[str, Value], b: dict[str, Value]) -> Rows:
    rows: Rows = []
    for label, family in (
        ("retries", "reactor_retries_total"),
        ("dead letters", "reactor_dead_letters_total"),
        ("restarts", "reactor_restarts_total"),
    ):
        now, then = a.get(family, {}), b.get(family, {})
        rows += [(label, k, str(n), f"+{n - then.get(k, 0)}") for k, n in sorted(now.items())]
    return rows


# -- from the journal -------------------------------------------------------------------------


def checkpoints(storage: Storage) -> dict[str, int]:
    """Every consumer's checkpoint position by name ("projection:Balances")."""
    return {cp.name: cp.position for cp in storage.checkpoints()}


def journal_sample(storage: Storage) -> Sample:
    """The head, the timestamps of the latest events, dead letters, checkpoints."""
    head = storage.last_position()
    return Sample(
        time.monotonic(),
        {
            "head": head,
            "recent": [e.timestamp for e in storage.read_all(max(head - RECENT, 0))],
            "dead letters": Counter(d.handler for d in storage.dead_letters()),
            "checkpoints": checkpoints(storage),
            "now": time.time(),
        },
    )


def journal_frame(url: str, before: Sample, after: Sample) -> Frame:
    """The dashboard of a journal: events, append rate, dead letters, checkpoints and lag."""
    a, b, seconds = after.values, before.values, max(after.at - before.at, 1e-9)
    recent, now = a["recent"], a["now"]
    in_window = [t for t in recent if t >= now - WINDOW]
    if recent and len(in_window) == len(recent) == RECENT:  # busier than RECENT per window
        appends = len(recent) / max(now - recent[0], 1e-9)
    else:
        appends = len(in_window) / WINDOW
    earlier = b["checkpoints"]
    rows: Rows = [
        (name, str(p), str(a["head"] - p), _per_s((p - earlier.get(name, p)) / seconds))
        for name, p in sorted(a["checkpoints"].items())
    ]
    dead = a["dead letters"]
    letters: Rows = [(h, str(n)) for h, n in sorted(dead.items())]
    return Frame(
        title=f"reactor top: {url}",
        summary=(
            ("events", str(a["head"])),
            ("appends", _per_s(appends)),
            ("last append", f"{now - recent[-1]:.1f}s ago" if recent else "-"),
            ("dead letters", str(sum(dead.values()))),
        ),
        tables=(
            ("consumers", ("checkpoint", "position", "lag", "rate"), rows),
            ("dead letters", ("handler", "waiting"), letters),
        ),
    )


# -- showing it -------------------------------------------------------------------------------


def render(frame: Frame) -> Any:
    """A frame as rich renderables: the summary line, then each table that has rows."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    summary = Text(frame.title + "\n", style="bold")
    for label, value in frame.summary:
        summary.append(f"{label} ", style="dim").append(f"{value}   ", style="bold")
    parts: list[Any] = [summary]
    for title, headers, rows in frame.tables:
        if rows:
            table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
            for i, header in enumerate(headers):  # numbers to the right
                numeric = all(r[i][:1].isdigit() or r[i][:1] in "+-" for r in rows)
                table.add_column(header, justify="right" if numeric else "left")
            for row in rows:
                table.add_row(*row)
            parts.append(table)
    return Group(*parts)


def _per_s(value: float) -> str:
    return f"{value:,.1f}/s"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} us"
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"
