"""Deeper property runs, deselected by default (`pytest -m slow` runs them): the storage
state machines and the runtime's concurrency model test with many more examples."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis.stateful import run_state_machine_as_test

from tests.test_runtime_properties import CLIENTS, check_concurrent_commands
from tests.test_store_stateful import MemoryMachine, SQLiteMachine

pytestmark = pytest.mark.slow
DEEP = settings(max_examples=400, stateful_step_count=60, deadline=None)


@pytest.mark.parametrize("machine", [MemoryMachine, SQLiteMachine])
def test_storage_state_machine_deeply(machine: type) -> None:
    run_state_machine_as_test(machine, settings=DEEP)


@settings(max_examples=200, deadline=None)
@given(CLIENTS)
def test_concurrent_commands_deeply(per_thread: list[list[tuple[str, str, int]]]) -> None:
    check_concurrent_commands(per_thread)
