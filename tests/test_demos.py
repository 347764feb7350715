"""The demos run to completion, as the README's first command runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.pg import fresh_schema, needs_server, url

ROOT = Path(__file__).resolve().parent.parent


def run_demo(name: str, cwd: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "demos" / name), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_journal_demo_twice_on_one_file(tmp_path: Path) -> None:
    """The first run writes release-1 events; both runs read them upcast to version 2."""
    first = run_demo("journal.py", tmp_path)
    assert "release 1 wrote 3 events" in first
    assert "seq  2  v2  Deposited(account_id='ann', amount=Decimal('100'), currency='EUR')" in first
    assert "balance: 125.5 EUR, 40.00 USD" in first
    second = run_demo("journal.py", tmp_path)
    assert "release 1 wrote" not in second and "balance: 125.5 EUR, 80.00 USD" in second
    assert "expected version 4, but it is at 5" in second


def test_bank_demo_rebuilds_state_after_a_restart(tmp_path: Path) -> None:
    out = run_demo("bank.py", tmp_path)
    assert "bob's overdraft refused: insufficient funds: balance 50.00, asked 500.00" in out
    rebuilt = out[out.index("balances rebuilt from 906 stored events") :]
    for line in (
        "ann    Ann        370.00",
        "bob    Bob        350.00",
        "cy     Cy         300.00",
    ):
        assert line in out[: out.index("stopped;")] and line in rebuilt
    again = run_demo("bank.py", tmp_path)  # continues on the same file
    assert "(again) account ann is already open" in again and "ann    Ann        740.00" in again


def test_reactor_demo_command_runs_a_demo(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "reactor",
            "demo",
            "bank",
            "--store",
            f"sqlite:///{tmp_path / 'b.db'}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "balances rebuilt from 906 stored events" in done.stdout


def test_shop_demo_read_models_match_the_journal(tmp_path: Path) -> None:
    """The shop demo runs to completion; its summary and read models agree with an
    independent computation from the journal."""
    import re

    from demos.shop.inventory import StockAdded, StockReleased, StockReserved
    from demos.shop.orders import OrderCancelled, OrderConfirmed, OrderPlaced
    from demos.shop.payments import PaymentAuthorized
    from demos.shop.views import OrderBoard, Revenue, StockLevels
    from reactor import Runtime

    url = f"sqlite:///{tmp_path / 'shop.db'}"
    done = subprocess.run(
        [sys.executable, "-m", "demos.shop", "--orders", "30", "--store", url, "--deadline", "0.5"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    confirmed, compensated = map(
        int, re.search(r"30: (\d+) confirmed, (\d+) compensated", out).groups()
    )
    assert (
        confirmed + compensated == 30
        and "dead letters left" in out
        and "0 dead letters left" in out
    )
    with Runtime(url) as rt:
        rt.register(OrderBoard, StockLevels, Revenue)
        last = rt.store.last_position()
        kinds = [OrderPlaced, OrderConfirmed, OrderCancelled, StockAdded, StockReleased]
        events = list(rt.read_all(types=[*kinds, StockReserved, PaymentAuthorized]))
        final: dict[str, str] = {}
        stock: dict[str, int] = {}
        revenue = 0
        for env in events:
            e = env.event
            if isinstance(e, OrderPlaced):
                final[e.order_id] = "placed"
            elif isinstance(e, OrderConfirmed | OrderCancelled):
                final[e.order_id] = "confirmed" if isinstance(e, OrderConfirmed) else "cancelled"
            elif isinstance(e, StockAdded | StockReleased):
                stock[e.sku] = stock.get(e.sku, 0) + e.qty
            elif isinstance(e, StockReserved):
                stock[e.sku] = stock.get(e.sku, 0) - e.qty
            elif isinstance(e, PaymentAuthorized):
                revenue += e.amount * {"EUR": 100, "XXX": 50}[e.currency] // 100
        assert rt.query(OrderBoard, after=last).status() == final
        assert list(final.values()).count("confirmed") == confirmed
        assert rt.query(StockLevels, after=last).levels() == stock
        assert rt.query(Revenue, after=last).total()[0] == revenue  # resumed from its checkpoint
        assert rt.dead_letters() == []
    for argv in (["journal", "streams"], ["journal", "show", "Order-order-0001"], ["dlq", "list"]):
        shown = subprocess.run(
            [sys.executable, "-m", "reactor", *argv, "--store", url],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert shown.returncode == 0 and shown.stdout, (argv, shown.stderr)


@needs_server
def test_the_bank_demo_runs_on_postgresql() -> None:
    for schema in fresh_schema():
        done = subprocess.run(
            [sys.executable, "-m", "reactor", "demo", "bank", "--store", url(schema)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert "balances rebuilt from 906 stored events" in done.stdout
