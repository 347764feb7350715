"""`python -m demos.shop --services`: the shop as four OS processes (see `services`), a
storefront in this one sending them orders over the bus, one service killed with SIGKILL
half-way and started again, then every order checked in the four journals: shipped and
paid, or cancelled with its stock released and its payment voided, each effect once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import attrs
import nats

from reactor import Envelope, Runtime, open_store

from .catalog import day_of_orders
from .inventory import StockReleased, StockReserved
from .orders import OrderCancelled, OrderConfirmed
from .payments import PaymentAuthorized, PaymentDeclined, PaymentVoided
from .services import SERVICES, OrderRequested
from .shipping import ShipmentBooked

EFFECTS = {  # the events that do something, by the service that decides them
    "orders": (OrderConfirmed, OrderCancelled),
    "inventory": (StockReserved, StockReleased),
    "payments": (PaymentAuthorized, PaymentDeclined, PaymentVoided),
    "shipping": (ShipmentBooked,),
}


class Service:
    """One service of the shop in a process of its own."""

    def __init__(self, name: str, folder: Path, bus: str, deadline: float) -> None:
        self.name, self.folder, self.bus, self.deadline = name, folder, bus, deadline
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> Service:
        package = __package__ or "demos.shop"
        command = [sys.executable, "-m", f"{package}.services", self.name]
        command += ["--store", f"sqlite:///{self.folder}/{self.name}.db", "--bus", self.bus]
        self.process = subprocess.Popen(
            [*command, "--deadline", str(self.deadline)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        return self

    def ready(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        if self.process.stdout.readline().strip() != "ready":
            raise SystemExit(f"the {self.name} service did not start")

    def signal(self, sig: int) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, sig)
            self.process.wait(30)


def run(orders: int, nats_url: str, deadline: float, kill: str) -> None:
    """Start the four services, send `orders` orders, kill `kill` half-way, check."""
    bus = f"{nats_url.rstrip('/')}/shop-{uuid.uuid4().hex[:6]}"
    folder = Path(tempfile.mkdtemp(prefix="shop-services-"))
    print(f"bus: {bus}\njournals: {folder}/<service>.db")
    fleet = {name: Service(name, folder, bus, deadline).start() for name in SERVICES}
    try:
        for s in fleet.values():
            s.ready()
        pids = (f"{n} (pid {s.process.pid})" for n, s in fleet.items() if s.process)
        print(f"started {', '.join(pids)}")
        outcomes = storefront(folder, bus, orders, deadline, fleet.get(kill))
        for s in fleet.values():
            s.signal(signal.SIGTERM)
        report(folder, outcomes)
    finally:
        for s in fleet.values():
            s.signal(signal.SIGKILL)
        _delete_streams(nats_url, bus.rsplit("/", 1)[1], [*SERVICES, "storefront"])


def storefront(
    folder: Path, bus: str, orders: int, deadline: float, victim: Service | None
) -> dict[str, str]:
    """Request the orders (the order id is their correlation id), kill and restart the
    victim half-way; each order's outcome as the orders service announced it."""
    outcomes: dict[str, str] = {}
    settled = threading.Condition()

    def note(e: Any, env: Envelope) -> None:
        with settled:
            outcomes[e.order_id] = getattr(e, "reason", "confirmed")
            settled.notify_all()

    url = f"sqlite:///{folder}/storefront.db"
    imports = [OrderConfirmed, OrderCancelled]
    with Runtime(url, service="storefront", bus=bus, imports=imports) as front:
        front.subscribe(note, types=imports)
        plans = day_of_orders(1, orders)
        print(f"requesting {orders} orders...")
        for n, plan in enumerate(plans, 1):
            request = OrderRequested(**attrs.asdict(plan))
            front.publish(request, stream=f"Request-{plan.order_id}", correlation_id=plan.order_id)
            if victim is not None and n == orders // 2:
                victim.signal(signal.SIGKILL)
                print(f"  after {n} orders: killed {victim.name} with SIGKILL; starting it again")
                victim.start().ready()
        with settled:
            if not settled.wait_for(lambda: len(outcomes) == orders, 60 + 2 * deadline):
                raise SystemExit(f"only {len(outcomes)} of {orders} orders settled in time")
    return outcomes


def report(folder: Path, outcomes: dict[str, str]) -> None:
    """Each order's effects in the four journals, its outcome, and the totals; and the
    lineage of the first order (its correlation id) through the services."""
    effects: dict[str, Counter[str]] = {order: Counter() for order in outcomes}
    first, lineage = min(outcomes), []
    for name, kinds in EFFECTS.items():
        store = open_store(f"sqlite:///{folder}/{name}.db")
        try:
            for env in store.read_all():
                source = env.metadata.get("source", name)
                if env.correlation_id == first:
                    lineage.append(f"  {name:<9} {env.type:<24} from {source}")
                if isinstance(env.event, kinds) and source == name:  # decided here
                    effects[env.event.order_id][type(env.event).__name__] += 1
        finally:
            store.close()
    print(f"\nthe lineage of {first} (its correlation id), journal by journal:")
    print("\n".join(lineage))
    print("\norder       outcome     effects (each decided in its service's journal)")
    wrong = []
    for order, outcome in sorted(outcomes.items()):
        did = effects[order]
        ok = _consistent(outcome, did) and max(did.values()) == 1
        wrong += [] if ok else [order]
        status, why = ("confirmed", "") if outcome == "confirmed" else ("cancelled", outcome)
        mark = "" if ok else "   <-- INCONSISTENT"
        print(f"{order}  {status:<10}  {', '.join(sorted(did)) or 'none'}  {why}{mark}")
    confirmed = sum(1 for o in outcomes.values() if o == "confirmed")
    reasons = Counter(o.split(" (")[0] for o in outcomes.values() if o != "confirmed")
    print(
        f"\n{len(outcomes)} orders: {confirmed} shipped and paid, {len(outcomes) - confirmed} "
        f"cancelled ({', '.join(f'{k}: {v}' for k, v in reasons.items()) or 'none'}); "
        + ("every order consistent, each effect once" if not wrong else f"{len(wrong)} WRONG")
    )
    if wrong:
        raise SystemExit(f"inconsistent orders: {', '.join(wrong)}")


def _consistent(outcome: str, did: Counter[str]) -> bool:
    if outcome == "confirmed":
        expected = {"OrderConfirmed", "StockReserved", "PaymentAuthorized", "ShipmentBooked"}
        return set(did) == expected
    kept = did["StockReserved"] == did["StockReleased"]
    unpaid = not did["PaymentAuthorized"] and not did["ShipmentBooked"]
    return did["OrderCancelled"] == 1 and not did["OrderConfirmed"] and kept and unpaid


def _delete_streams(nats_url: str, namespace: str, services: list[str]) -> None:
    """Delete this run's streams (the journals keep every event)."""

    async def delete() -> None:
        nc = await nats.connect(nats_url.rstrip("/"))
        for name in services:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await nc.jetstream().delete_stream(f"REACTOR-{namespace}_{name}")
        await nc.close()

    asyncio.run(delete())
