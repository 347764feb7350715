"""The testing kit: given/when/then fixtures for aggregates and projections, and the
runtime pytest fixture."""

from __future__ import annotations

import attrs
import pytest

from reactor import Aggregate, Runtime, command, handles
from reactor.testing import AggregateFixture, ProjectionFixture, runtime  # noqa: F401
from tests.bank import Account, Balances, Deposit, Deposited, Opened, Withdraw, Withdrawn


def test_given_when_then() -> None:
    fixture = AggregateFixture(Account).given(Opened("a1", "Ann"), Deposited("a1", 10))
    fixture.when(Withdraw("a1", 4)).then(Withdrawn("a1", 4)).then_state(balance=6)
    fixture.when(Withdraw("a1", 7)).then_rejected(match="balance 6, asked 7")


def test_failed_expectations_say_what_happened() -> None:
    fixture = AggregateFixture(Account).when(Deposit("a1", 5))
    with pytest.raises(AssertionError, match=r"expected events \[\], got \[Deposited"):
        fixture.then()
    with pytest.raises(AssertionError, match="expected Rejected, got events"):
        fixture.then_rejected()
    with pytest.raises(AssertionError, match="expected state balance=1, got 5"):
        fixture.then_state(balance=1)
    rejected = AggregateFixture(Account).when(Deposit("a1", 0))
    with pytest.raises(AssertionError, match="but the command raised Rejected"):
        rejected.then(Deposited("a1", 0))
    with pytest.raises(AssertionError, match="does not match 'negative'"):
        rejected.then_rejected(match="negative")


def test_events_that_cannot_be_stored_fail_in_the_fixture() -> None:
    @command
    @attrs.frozen
    class Leak:
        account_id: str

    class Leaky(Aggregate, key="account_id"):
        @handles(Leak)
        def leak(self, cmd: Leak) -> object:
            return object()  # not a registered event

    with pytest.raises(Exception, match="unknown event type"):
        AggregateFixture(Leaky).when(Leak("a"))


def test_projection_fixture() -> None:
    p = ProjectionFixture(Balances).given(Deposited("a1", 5), Withdrawn("a1", 2), Opened("a1", "x"))
    assert p.projection.balance("a1") == 3 and p.projection.positions == [1, 2]


def test_runtime_fixture(runtime: Runtime) -> None:  # noqa: F811
    runtime.register(Account)
    assert runtime.send(Deposit("a1", 1)).version == 1
