"""The shop demo: Order, Inventory, Payment and Shipping as separate services (one module
each), a Checkout saga coordinating them, and read models. `python -m demos.shop`."""
