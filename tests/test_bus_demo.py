"""`reactor demo shop --services`: four service processes over the bus, one killed with
SIGKILL half-way and restarted; every order ends consistent, each effect once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.test_bus_support import needs_nats

ROOT = Path(__file__).resolve().parent.parent
pytestmark = needs_nats


def test_the_shop_as_four_services_survives_a_killed_service(tmp_path: Path) -> None:
    """Inventory dies half-way through 14 orders (one declined, one to a silent gateway);
    each order is shipped and paid, or cancelled with stock released and payment voided."""
    options = ["--services", "--orders", "14", "--deadline", "0.5", "--kill", "inventory"]
    done = subprocess.run(
        [sys.executable, "-m", "reactor", "demo", "shop", *options],
        cwd=tmp_path,
        env={**os.environ, "TMPDIR": str(tmp_path)},  # where the demo keeps its journals
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "killed inventory with SIGKILL" in out
    assert "14 orders: 12 shipped and paid, 2 cancelled" in out
    assert "every order consistent, each effect once" in out
    assert "the payment gateway did not answer" in out and "card declined" in out
    assert "  payments  shop.OrderPlaced         from orders" in out  # lineage
