"""`reactor top`: one frame (`--once`) of a runtime's metrics endpoint shows command rates,
latency quantiles, appends, consumer lag, mailboxes and faults; of a journal, the event
count, the append rate, checkpoints with their lag and dead letters; an endpoint that does
not answer is one line and exit status 2."""

from __future__ import annotations

import contextlib
import http.server
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reactor import Envelope, Rejected, RetryPolicy, Runtime
from reactor.cli import main
from reactor.cli.top import metrics_url
from reactor.metrics import Metrics
from reactor.prometheus import MetricsServer, serve
from reactor.store import Checkpoint, NewRecord, open_storage
from reactor.store.base import DeadLetterRecord
from tests.bank import Account, Deposit, Deposited, DurableBalances
from tests.helpers import wait_for


@pytest.fixture
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "160")  # rich's width when not on a terminal


class Busy:
    """A runtime's metrics that move between two scrapes: reading the journal head, each
    scrape records work (20 commands, 20 commits, a retry) that the next one sees."""

    def __init__(self) -> None:
        self.metrics, self.head, self.position = Metrics(), 100, 90
        m = self.metrics
        m.on_scrape("reactor_journal_head", self.work)
        m.on_scrape("reactor_consumer_position", lambda: {"Balances": self.position, "Audit": 99})
        m.on_scrape("reactor_aggregates_live", lambda: 7)
        m.on_scrape_mailboxes(lambda: [("aggregate", "Account-1", 3), ("aggregate", "B", 1)])
        m.record_restart("projections")
        m.record_command("Withdraw", "rejected", 0.0001)

    def work(self) -> int:
        for _ in range(20):
            self.metrics.record_command("Deposit", "ok", 0.0003)
            self.metrics.record_commit(2, 4, 0.0002)
        self.metrics.record_retry("Balances")
        self.head += 80
        self.position += 10
        return self.head


@pytest.fixture
def busy() -> Iterator[tuple[Busy, MetricsServer]]:
    runtime = Busy()
    server = serve(runtime.metrics, 0)
    yield runtime, server
    server.stop()


def top(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(["top", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_one_frame_of_a_running_runtime(
    busy: tuple[Busy, MetricsServer], capsys: pytest.CaptureFixture[str], wide: None
) -> None:
    """Rates from two scrapes, quantiles from the histogram, each section filled."""
    _, server = busy
    status, out, _ = top(
        capsys, "--metrics", f"http://127.0.0.1:{server.port}", "--once", "--interval", "0.05"
    )
    assert status == 0, out
    lines = out.splitlines()
    assert lines[0] == f"reactor top: http://127.0.0.1:{server.port}/metrics"
    summary = lines[1]
    for label in ("commands", "errors", "p50", "p99", "appends", "batch 2.0", "aggregates live 7"):
        assert label in summary
    assert "commands 0.0/s" not in summary and "appends 0.0/s" not in summary
    assert "p50 350 us   p99 497 us" in summary  # all in the bucket (200 us, 500 us]
    deposit = next(line for line in lines if line.strip().startswith("Deposit")).split()
    assert deposit[2:] == ["20", "0", "0", "0", "350", "us", "497", "us"] and deposit[1] != "0.0/s"
    withdraw = next(line for line in lines if line.strip().startswith("Withdraw"))
    assert withdraw.split()[1:6] == ["0.0/s", "0", "1", "0", "0"]  # rate, ok, rejected, ...
    balances = next(line for line in lines if line.strip().startswith("Balances"))
    assert balances.split()[1:3] == ["110", "150"] and balances.split()[3] != "0.0/s"
    audit = next(line for line in lines if line.strip().startswith("Audit"))
    assert audit.split()[1] == "99" and audit.split()[3] == "0.0/s"
    assert any(line.split()[:3] == ["aggregate", "4", "3"] for line in lines)
    assert any(line.split()[:3] == ["restarts", "projections", "1"] for line in lines)
    assert any(line.split() == ["retries", "Balances", "1", "+1"] for line in lines)


def test_an_endpoint_that_does_not_answer_is_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Connection refused: exit 2, and what to check."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: refused
        status, out, err = top(capsys, "--metrics", f"127.0.0.1:{port}", "--once")
    assert status == 2 and out == "" and err.count("\n") == 1
    assert err.startswith(f"reactor: cannot read metrics from http://127.0.0.1:{port}/metrics: ")
    assert "check that the runtime runs with metrics_port=PORT" in err


@pytest.mark.parametrize(
    ("given", "url"),
    [
        ("http://127.0.0.1:9464", "http://127.0.0.1:9464/metrics"),
        ("127.0.0.1:9464/", "http://127.0.0.1:9464/metrics"),
        ("https://host:1/custom", "https://host:1/custom"),
    ],
)
def test_the_metrics_path_is_added_unless_given(given: str, url: str) -> None:
    """A bare host and port means its /metrics."""
    assert metrics_url(given) == url


@pytest.fixture
def journal(tmp_path: Path) -> str:
    """A journal with 30 events appended now, two checkpoints and a dead letter."""
    url = f"sqlite:///{tmp_path / 'top.db'}"
    storage = open_storage(url)
    now = time.time()
    records = [NewRecord(f"e{i}", "bank.Deposited", 1, b"{}", now - 1 + i / 100) for i in range(30)]
    storage.append("Account-a1", records, 0)
    storage.save_checkpoint(Checkpoint(name="projection:Balances", position=30))
    storage.save_checkpoint(Checkpoint(name="subscriber:mailer", position=12))
    storage.save_dead_letter(
        DeadLetterRecord(
            id="d1", handler="mailer", position=13, stream_id="Account-a1", error="boom", attempts=5
        )
    )
    storage.close()
    return url


def test_one_frame_of_a_journal(
    journal: str,
    capsys: pytest.CaptureFixture[str],
    wide: None,
) -> None:
    """Event count, append rate over the last minute, each checkpoint's lag, dead letters."""
    status, out, _ = top(capsys, "--store", journal, "--once", "--interval", "0.01")
    assert status == 0
    lines = out.splitlines()
    assert lines[0] == f"reactor top: {journal}"
    assert "events 30" in lines[1] and "appends 0.5/s" in lines[1]
    assert "dead letters 1" in lines[1] and "s ago" in lines[1]
    rows = {line.split()[0]: line.split()[1:] for line in lines if line.strip()}
    assert rows["projection:Balances"][:2] == ["30", "0"]
    assert rows["subscriber:mailer"][:2] == ["12", "18"]
    assert rows["mailer"] == ["1"]


def test_without_rich_top_says_which_extra_to_install(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """rich is the `cli` extra: its absence is one line naming it, exit 2."""
    monkeypatch.setitem(sys.modules, "rich", None)
    status, _, err = top(capsys, "--metrics", "127.0.0.1:1", "--once")
    assert status == 2
    assert err == "reactor: reactor top needs rich: pip install 'reactor-actors[cli]'\n"


def test_the_command_line_imports_neither_rich_nor_prometheus_client() -> None:
    """Both are imported by the commands that use them, when they run."""
    code = (
        "import sys, reactor.cli, reactor.metrics, reactor.tracing\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'rich', 'prometheus_client'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_one_frame_of_a_live_runtime_and_of_its_journal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], wide: None
) -> None:
    """A real runtime's endpoint: its commands by outcome, its consumer with lag 0, its
    mailboxes and its dead letter; then, stopped, what its journal shows."""
    url = f"sqlite:///{tmp_path / 'live.db'}"

    def broken(event: object, env: Envelope) -> None:
        raise ValueError("bug")

    with Runtime(url, metrics_port=0).register(Account, DurableBalances) as rt:
        rt.subscribe(broken, types=[Deposited], name="mailer", retry=RetryPolicy(max_attempts=1))
        for n in (1, 2, 0):
            with contextlib.suppress(Rejected):
                rt.send(Deposit("a1", n))
        assert rt.query(DurableBalances, after=2).balance("a1") == 3
        assert wait_for(lambda: rt.metrics()["reactor_dead_letters_total"] == {"mailer": 1})
        status, out, _ = top(
            capsys, "--metrics", f"127.0.0.1:{rt.metrics_port}", "--once", "--interval", "0.05"
        )
    assert status == 0, out
    lines = out.splitlines()
    assert "head 2" in lines[1] and "aggregates live 1" in lines[1]
    deposit = next(line for line in lines if line.strip().startswith("Deposit")).split()
    assert deposit[2:6] == ["2", "1", "0", "0"]  # ok, rejected, failed, timed out
    balances = next(line for line in lines if line.strip().startswith("DurableBalances"))
    assert balances.split()[1:3] == ["2", "0"]  # position, lag
    assert any(line.split()[:2] == ["journal", "0"] for line in lines)  # its mailbox
    assert any(line.split() == ["dead", "letters", "mailer", "1", "+0"] for line in lines)
    status, out, _ = top(capsys, "--store", url, "--once", "--interval", "0.01")
    assert status == 0
    lines = out.splitlines()
    assert "events 2" in lines[1] and "dead letters 1" in lines[1]
    rows = {line.split()[0]: line.split()[1:] for line in lines if line.strip()}
    assert rows["projection:DurableBalances"][:2] == ["2", "0"]
    assert rows["mailer"] == ["1"]


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("http://[::1", "--metrics 'http://[::1' is not a URL"),
        ("ftp://127.0.0.1:1/x", "is not an http URL: give http://HOST:PORT"),
        ("http://no-such-host.invalid:1", "cannot read metrics from http://no-such-host.invalid"),
    ],
)
def test_a_wrong_metrics_url_is_one_line(
    given: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not a URL, not http, a host that does not resolve: exit 2, what to check."""
    status, out, err = top(capsys, "--metrics", given, "--once", "--interval", "0.01")
    assert status == 2 and out == "" and err.count("\n") == 1
    assert says in err


def test_an_endpoint_that_is_not_prometheus_is_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Something else answers on that port: exit 2, it says what it expected."""
    server = http.server.HTTPServer(("127.0.0.1", 0), _NotMetrics)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,))
    thread.start()
    try:
        status, _, err = top(
            capsys, "--metrics", f"127.0.0.1:{server.server_port}", "--once", "--interval", "0.01"
        )
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
    assert status == 2 and err.count("\n") == 1
    assert "does not answer in the Prometheus text format" in err


class _NotMetrics(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<html><body>hello</body></html>"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass
