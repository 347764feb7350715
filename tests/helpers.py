"""Small test helpers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


def wait_for(condition: Callable[[], object], timeout: float = 10.0) -> bool:
    """Poll `condition` until it is true or `timeout` passes (for states the runtime
    announces no event for, such as a passivation or a dead letter being written)."""
    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while not condition():
        if time.monotonic() > deadline:
            return False
        tick.wait(0.005)
    return True
