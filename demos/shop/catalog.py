"""The shop's products (price, opening stock) and a day of orders drawn from them, shared
by the single-process shop and the shop as four services."""

from __future__ import annotations

import random

from .orders import PlaceOrder

CATALOG = {"kettle": (2500, 30), "lamp": (4000, 20), "chair": (9900, 10)}  # price, stock


def day_of_orders(first: int, count: int) -> list[PlaceOrder]:
    """Orders `first` .. `first + count - 1`: every 9th card is declined, every 13th goes to
    a gateway that never answers, and every 17th (from the 7th) is in a currency the
    revenue report does not know."""
    rng = random.Random(first)
    plans = []
    for n in range(first, first + count):
        sku = rng.choice(list(CATALOG))
        card = "declined" if n % 9 == 0 else "silent" if n % 13 == 0 else "visa"
        currency = "XXX" if n % 17 == 7 else "EUR"
        qty = rng.randint(1, 2)
        plans.append(
            PlaceOrder(
                f"order-{n:04d}",
                f"customer-{n % 11}",
                sku,
                qty,
                CATALOG[sku][0] * qty,
                card,
                currency,
            )
        )
    return plans
