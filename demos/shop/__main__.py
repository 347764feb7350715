"""Demo: an online shop on reactor. Order, Inventory, Payment and Shipping are separate
services; the Checkout saga coordinates them with compensation and a payment deadline.

It runs a stream of orders with realistic failures: stock runs out, a card is declined,
a payment gateway never answers (the deadline cancels the order), the carrier's API
fails now and then (retried) and one order is poison for the revenue report (dead
letter, shown, then redriven once a fix is deployed). Run it twice on the same file: it
continues where it stood.

    python -m demos.shop [--orders 40] [--store sqlite:///shop-demo.db] [--deadline 1.0]

With --services, the four services run as four processes, each with its own journal,
talking over NATS JetStream (demos/shop/services.py; one is killed half-way):

    python -m demos.shop --services [--orders 40] [--bus nats://127.0.0.1:4222] [--kill payments]
"""

from __future__ import annotations

import argparse
import logging
import threading
import time
from collections import Counter
from typing import Any, ClassVar

from reactor import RetryPolicy, Runtime

from .catalog import CATALOG, day_of_orders
from .checkout import Checkout
from .inventory import AddStock, Inventory
from .orders import Order, OrderPlaced
from .payments import Payment
from .shipping import Shipment, ShipmentBooked
from .views import OrderBoard, Revenue, StockLevels


def story(rt: Runtime, orders: int, deadline: float) -> dict[str, Any]:
    board = rt.query(OrderBoard)
    first = len(board.status()) + 1
    if first == 1:
        print("stocking the shelves:", ", ".join(f"{n} x{q}" for n, (_, q) in CATALOG.items()))
        for sku, (_, qty) in CATALOG.items():
            rt.send(AddStock(sku, qty))
    else:
        print(f"continuing: {first - 1} orders were placed before")

    plans = day_of_orders(first, orders)
    ids = [p.order_id for p in plans]
    print(
        f"placing {orders} orders ({sum(p.card == 'silent' for p in plans)} to a gateway "
        "that never "
        f"answers: the deadline is {deadline:g}s)..."
    )
    start = time.perf_counter()
    for f in [rt.submit(p) for p in plans]:
        f.get(30)
    settled: set[str] = set()
    while len(settled) < len(ids):
        status = board.status()
        now = {o for o in ids if status.get(o) in ("confirmed", "cancelled")}
        if len(now) > len(settled):
            settled = now
            print(f"  {len(settled):>4}/{len(ids)} settled")
        threading.Event().wait(0.05)
        if time.perf_counter() - start > deadline + 60:
            raise SystemExit("orders did not settle in time")
    took = time.perf_counter() - start
    return {"ids": ids, "took": took}


def tables(rt: Runtime, ids: list[str]) -> None:
    last = rt.store.last_position()
    board = rt.query(OrderBoard, after=last)
    status, reasons = board.status(), board.cancellations()
    print("\norder board (this run):")
    for o in ids[:12]:
        print(f"  {o}  {status[o]:<10} {reasons.get(o, '')}")
    if len(ids) > 12:
        print(f"  ... and {len(ids) - 12} more")
    print(
        "\nstock levels:",
        ", ".join(
            f"{k} {v}" for k, v in sorted(rt.query(StockLevels, after=last).levels().items())
        ),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=40)
    parser.add_argument("--store", default="sqlite:///shop-demo.db")
    parser.add_argument("--deadline", type=float, default=1.0, help="payment timeout, seconds")
    parser.add_argument(
        "--services",
        action="store_true",
        help="run Orders, Inventory, Payments and Shipping as four processes over the bus",
    )
    parser.add_argument("--bus", default="nats://127.0.0.1:4222", help="with --services")
    parser.add_argument(
        "--kill",
        default="payments",
        choices=["orders", "inventory", "payments", "shipping", "none"],
        help="with --services: the service killed with SIGKILL half-way (and restarted)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)  # the story prints what matters
    if args.services:
        from .fleet import run  # needs nats-py (reactor-actors[nats])

        return run(args.orders, args.bus, args.deadline, args.kill)

    class DemoCheckout(Checkout, name="Checkout"):
        payment_timeout: ClassVar[float] = args.deadline

    carrier_calls: Counter[str] = Counter()

    def carrier(event: ShipmentBooked, env: Any) -> None:
        """The carrier's API: every fifth label request fails twice before it works."""
        carrier_calls[event.order_id] += 1
        if int(event.order_id[-4:]) % 5 == 0 and carrier_calls[event.order_id] <= 2:
            raise ConnectionError("carrier API timed out")

    print(f"journal: {args.store}")
    with Runtime(args.store, retry=RetryPolicy(first_delay=0.02, max_delay=0.2)) as rt:
        rt.register(
            Order, Inventory, Payment, Shipment, DemoCheckout, OrderBoard, StockLevels, Revenue
        )
        rt.subscribe(carrier, types=[ShipmentBooked], name="carrier")
        run = story(rt, args.orders, args.deadline)
        tables(rt, run["ids"])

        last = rt.store.last_position()
        cents, booked = rt.query(Revenue, after=last).total()
        print(f"\nrevenue: {cents / 100:,.2f} EUR from {booked} paid orders")
        letters = rt.dead_letters()
        for d in letters:
            print(
                f"\ndead letter {d.id} ({d.handler}): {d.error}\n"
                f"  event {d.envelope.type} of {d.envelope.stream_id} at position "
                f"{d.envelope.position}, tried {d.attempts} times, {d.waiting} waiting behind it"
            )
        if letters:
            print("deploying the fix (an exchange rate for XXX) and redriving...")
            Revenue.rates["XXX"] = 50
            for d in letters:
                rt.redrive(d.id)
            cents, booked = rt.query(Revenue, after=last).total()
            left = len(rt.dead_letters())
            print(
                f"revenue: {cents / 100:,.2f} EUR from {booked} paid orders; "
                f"{left} dead letters left"
            )

        status = rt.query(OrderBoard, after=last).status()
        reasons = rt.query(OrderBoard, after=last).cancellations()
        mine = [status[o] for o in run["ids"]]
        why = Counter(reasons[o].split(" (")[0] for o in run["ids"] if status[o] == "cancelled")
        retried = sum(1 for n in carrier_calls.values() if n > 1)
        placed = sum(1 for _ in rt.read_all(types=[OrderPlaced]))
        print("\nsummary")
        causes = ", ".join(f"{k}: {v}" for k, v in why.items()) or "none"
        print(
            f"  orders this run      {len(mine)}: {mine.count('confirmed')} confirmed, "
            f"{mine.count('cancelled')} compensated ({causes})"
        )
        print(f"  dead-lettered        {len(letters)} (redriven)")
        print(f"  carrier retries      {retried} shipments needed more than one call")
        print(f"  orders in journal    {placed}; events stored {rt.store.last_position()}")
        print(
            f"  throughput           {len(mine) / run['took']:.1f} orders/s settled "
            f"({run['took']:.2f}s, deadlines included)"
        )
    print(f"\nlook inside: reactor journal streams --store {args.store}")


if __name__ == "__main__":
    main()
