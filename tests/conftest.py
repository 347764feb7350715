"""Shared fixtures: hypothesis profiles, a storage per backend, and a leak guard."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pykka
import pytest
from hypothesis import HealthCheck, settings

from reactor.store import Storage, open_storage

settings.register_profile(
    "default", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci", parent=settings.get_profile("default"), derandomize=True, print_blob=True
)
settings.register_profile("slow", parent=settings.get_profile("default"), max_examples=1000)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") == "true" else "default")
)


@pytest.fixture(params=["memory", "sqlite"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    """A fresh, empty Storage of each embedded backend (for tests over every backend)."""
    s = open_storage("memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/j.db")
    yield s
    s.close()


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Every test must leave no pykka actor and no extra thread alive."""
    before = set(threading.enumerate())
    yield
    actors = pykka.ActorRegistry.get_all()
    if actors:
        pykka.ActorRegistry.stop_all()
    deadline = threading.Event()
    for _ in range(100):  # threads that were told to stop get a moment to finish
        extra = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not extra:
            break
        deadline.wait(0.05)
    assert not actors, f"actors left alive: {actors}"
    assert not extra, f"threads left alive: {[t.name for t in extra]}"
