"""The shop workload: completed orders/s with 4 aggregates per order and the Checkout saga
on a SQLite file, next to the same workload as direct synchronous calls in one thread
(no actors; the same commands, the same journal writes, one commit each) as the floor.

    python -m perf shop [--quick]
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from demos.shop.checkout import Checkout
from demos.shop.inventory import AddStock, Inventory, ReserveStock
from demos.shop.orders import ConfirmOrder, Order, OrderConfirmed, PlaceOrder
from demos.shop.payments import ChargeCard, Payment
from demos.shop.shipping import Shipment, ShipOrder
from perf.report import row
from reactor import Runtime
from reactor.events import decided_events
from reactor.store import open_store


def orders(n: int) -> list[PlaceOrder]:
    return [PlaceOrder(f"o{i}", "ann", f"sku-{i % 10}", 1, 1000, "visa") for i in range(n)]


def run_reactor(url: str, placed: list[PlaceOrder]) -> float:
    confirmed = threading.Semaphore(0)
    with Runtime(url) as rt:
        rt.register(Order, Inventory, Payment, Shipment, Checkout)
        for sku in range(10):
            rt.send(AddStock(f"sku-{sku}", len(placed)))
        rt.subscribe(lambda e, env: confirmed.release(), types=[OrderConfirmed])
        start = time.perf_counter()
        for f in [rt.submit(p) for p in placed]:
            f.get(60)
        for _ in placed:
            if not confirmed.acquire(timeout=120):
                raise RuntimeError("orders did not complete")
        return len(placed) / (time.perf_counter() - start)


def run_direct(url: str, placed: list[PlaceOrder]) -> float:
    """Each step as a plain call: load the aggregate (kept in memory), decide, append."""
    store = open_store(url)
    classes = {Order: "order_id", Inventory: "sku", Payment: "order_id", Shipment: "order_id"}
    live: dict[str, tuple[Any, int]] = {}

    def handle(cls: type[Any], command: Any) -> list[Any]:
        spec = cls.__reactor_type__(None)
        stream = spec.stream_id(getattr(command, classes[cls]))
        state, version = live.get(stream) or (cls(), 0)
        events = decided_events(spec.handlers[type(command)](state, command))
        stored = store.append(stream, events, version)
        for env in stored:
            applier = spec.appliers.get(type(env.event))
            if applier:
                applier(state, env.event)
        live[stream] = (state, version + len(stored))
        return events

    for sku in range(10):
        handle(Inventory, AddStock(f"sku-{sku}", len(placed)))
    start = time.perf_counter()
    for p in placed:
        handle(Order, p)
        handle(Inventory, ReserveStock(p.sku, p.order_id, p.qty))
        handle(Payment, ChargeCard(p.order_id, p.amount, p.card, p.currency))
        handle(Shipment, ShipOrder(p.order_id, p.customer))
        handle(Order, ConfirmOrder(p.order_id))
    took = time.perf_counter() - start
    store.close()
    return len(placed) / took


def main(quick: bool = False) -> None:
    print(" ".join(__doc__.split("\n\n")[0].split()))
    logging.getLogger("reactor").setLevel(logging.ERROR)
    placed = orders(300 if quick else 2000)
    with tempfile.TemporaryDirectory() as tmp:
        direct = run_direct(f"sqlite:///{Path(tmp) / 'direct.db'}", placed)
        ours = run_reactor(f"sqlite:///{Path(tmp) / 'reactor.db'}", placed)
    row(
        "orders completed (saga, 4 aggregates)",
        ours,
        direct,
        "direct calls, one thread",
        "orders/s",
    )
