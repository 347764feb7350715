"""The Runtime end to end: commands, results, rejections, failures, queries after a
position, publishing, subscribers, idempotent command ids, restarts, clean stops."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import attrs
import pytest

from reactor import (
    Aggregate,
    CommandResult,
    RegistrationError,
    Rejected,
    RetryPolicy,
    Runtime,
    RuntimeStopped,
    StorageError,
    UnknownCommand,
    applies,
    command,
    handles,
)
from reactor.actors.consumer import ConsumerActor
from reactor.actors.dispatch import Dispatcher
from reactor.actors.pooled import PooledActor
from reactor.actors.scheduler import Scheduler
from reactor.store import open_store
from tests.bank import (
    Account,
    Audited,
    Balances,
    Deposit,
    Deposited,
    DurableBalances,
    Explode,
    Open,
    Opened,
    Touch,
    Withdraw,
    Withdrawn,
)


@pytest.fixture
def rt() -> Runtime:
    with Runtime("memory://") as runtime:
        runtime.register(Account, Balances)
        yield runtime


def test_command_result_and_envelopes(rt: Runtime) -> None:
    first = rt.send(Open("a1", "Ann"))
    result = rt.send(Deposit("a1", 10), correlation_id="corr-9")
    assert isinstance(result, CommandResult)
    assert (result.stream_id, result.version, result.position) == ("Account-a1", 2, 2)
    (env,) = result.events
    assert (env.seq, env.position, env.event) == (2, 2, Deposited("a1", 10))
    assert env.correlation_id == "corr-9" and env.causation_id not in (None, "corr-9")
    assert first.events[0].correlation_id == first.events[0].causation_id  # new ids: the command's
    assert [e.event for e in rt.read_stream("Account-a1")] == [
        Opened("a1", "Ann"),
        Deposited("a1", 10),
    ]


def test_query_after_a_position_reads_your_writes(rt: Runtime) -> None:
    futures = [rt.submit(Deposit(f"a{i % 3}", i + 1)) for i in range(30)]
    last = max(f.get(10).position for f in futures)
    totals, positions = rt.query(Balances, after=last).snapshot()
    assert totals == {f"a{k}": sum(i + 1 for i in range(30) if i % 3 == k) for k in range(3)}
    assert positions == list(range(1, 31))


def test_rejected_stores_nothing_and_the_aggregate_serves_on(rt: Runtime) -> None:
    rt.send(Deposit("a1", 5))
    with pytest.raises(Rejected, match="insufficient funds: balance 5, asked 9"):
        rt.send(Withdraw("a1", 9))
    assert rt.send(Withdraw("a1", 5)).version == 2
    assert [e.event for e in rt.read_stream("Account-a1")] == [
        Deposited("a1", 5),
        Withdrawn("a1", 5),
    ]


def test_a_buggy_handler_reaches_the_caller_only(rt: Runtime) -> None:
    rt.send(Deposit("a1", 5))
    with pytest.raises(ZeroDivisionError, match="a bug in the handler"):
        rt.send(Explode("a1"))
    assert rt.send(Deposit("a1", 1)).version == 2


def test_a_command_that_decides_nothing(rt: Runtime) -> None:
    rt.send(Deposit("a1", 5))
    result = rt.send(Touch("a1"), command_id="touch-1")
    assert (result.version, result.position, result.events) == (1, 0, ())
    assert rt.send(Touch("a1"), command_id="touch-1") == result


def test_a_resent_command_id_returns_the_first_result(rt: Runtime) -> None:
    first = rt.send(Deposit("a1", 5), command_id="cmd-1")
    rt.send(Deposit("a1", 1))
    again = rt.send(Deposit("a1", 5), command_id="cmd-1")
    assert again == first
    assert [e.event.amount for e in rt.read_stream("Account-a1")] == [5, 1]


def test_unknown_commands_and_classes_are_clear_errors(rt: Runtime) -> None:
    with pytest.raises(UnknownCommand, match=r"no registered aggregate handles .*Audited"):
        rt.send(Audited("x"))  # type: ignore[arg-type]
    with pytest.raises(RegistrationError, match="takes Aggregate, Projection and Saga subclasses"):
        rt.register(int)


def test_publish_and_subscribe(rt: Runtime) -> None:
    seen: list[tuple[str, int]] = []
    done = threading.Event()

    def audit(event: object, env: object) -> None:
        seen.append((type(event).__name__, env.position))  # type: ignore[attr-defined]
        if len(seen) == 3:
            done.set()

    rt.subscribe(audit, types=[Deposited, Audited])
    rt.send(Open("a1"))
    rt.send(Deposit("a1", 3))
    published = rt.publish(Audited("checked"), stream="Audit-1")
    assert (published.stream_id, published.version, published.position) == ("Audit-1", 1, 3)
    rt.send(Deposit("a1", 4))
    assert done.wait(10)
    assert seen == [("Deposited", 2), ("Audited", 3), ("Deposited", 4)]


def test_a_subscriber_may_send_commands(rt: Runtime) -> None:
    """Choreography: a subscriber reacting with rt.send does not deadlock the runtime."""
    done = threading.Event()

    def bonus(event: Opened, env: object) -> None:
        rt.send(Deposit(event.account_id, 100))
        done.set()

    rt.subscribe(bonus, types=[Opened])
    rt.send(Open("a1"))
    assert done.wait(10)
    assert rt.query(Balances, after=2).balance("a1") == 100


def test_send_from_a_pool_worker_is_refused(rt: Runtime) -> None:
    class Greedy(Balances):
        def greedy(self) -> object:
            try:
                return rt.send(Deposit("a1", 1))
            except Exception as e:
                return e

    rt.register(Greedy)
    error = rt.query(Greedy).greedy()
    assert "would block a worker" in str(error)


@command
@attrs.frozen
class Locate:
    account_id: str


def test_send_runs_its_own_turns_and_submit_leaves_them_to_the_pool(rt: Runtime) -> None:
    """A blocking send does the work it would wait for (rehydrate, decide, commit, apply)
    on the calling thread; a submitted command is handled by a pool worker."""
    seen: list[str] = []

    class Where(Aggregate, key="account_id"):
        @handles(Locate)
        def locate(self, cmd: Locate) -> Deposited:
            seen.append(threading.current_thread().name)
            return Deposited(cmd.account_id, 1)

    rt.register(Where)
    me = threading.current_thread().name
    assert rt.send(Locate("w1")).version == 1
    assert rt.send(Locate("w1")).version == 2
    assert rt.submit(Locate("w1")).get(5).version == 3
    assert seen[:2] == [me, me] and seen[2].startswith("reactor-")
    assert rt.query(Balances, after=3).balance("w1") == 3  # the router and readers ran too


@command
@attrs.frozen
class WaitForGate:
    account_id: str


def test_send_async_never_blocks_the_loop(rt: Runtime) -> None:
    """The handler waits for a gate only the event loop can open while the command is in
    flight: a send_async that blocked the loop would never see it opened."""
    gate = threading.Event()

    class Gated(Aggregate, key="account_id"):
        @handles(WaitForGate)
        def wait(self, cmd: WaitForGate) -> None:
            if not gate.wait(10):
                raise TimeoutError("the event loop was blocked")

    rt.register(Gated)

    async def main() -> list[int]:
        pending = asyncio.ensure_future(rt.send_async(WaitForGate("g1")))
        await asyncio.sleep(0.01)  # the command is in its handler now
        gate.set()  # only possible if the loop runs meanwhile
        await pending
        results = await asyncio.gather(*(rt.send_async(Deposit("a1", 1)) for _ in range(20)))
        return sorted(r.version for r in results)

    assert asyncio.run(main()) == list(range(1, 21))


def test_after_stop_every_call_raises() -> None:
    rt = Runtime("memory://").register(Account, Balances)
    with pytest.raises(RuntimeStopped, match="start"):
        rt.send(Deposit("a1", 1))
    rt.start()
    rt.start()  # idempotent
    rt.send(Deposit("a1", 1))
    rt.stop()
    rt.stop()
    for call in (
        lambda: rt.send(Deposit("a1", 1)),
        lambda: rt.submit(Deposit("a1", 1)),
        lambda: rt.query(Balances),
        lambda: rt.read_stream("Account-a1"),
        lambda: rt.publish(Audited("x"), stream="s"),
        lambda: rt.subscribe(print),
    ):
        with pytest.raises(RuntimeStopped):
            call()
    with pytest.raises(RuntimeStopped, match="make a new Runtime"):
        rt.start()


def test_state_and_projections_survive_a_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bank.db'}"
    with Runtime(url, snapshot_every=3) as rt:
        rt.register(Account, Balances, DurableBalances)
        for amount in range(1, 8):
            last = rt.send(Deposit("a1", amount))
        assert rt.query(DurableBalances, after=last.position).count() == 7
    with Runtime(url, snapshot_every=3) as rt:
        rt.register(Account, Balances, DurableBalances)
        assert rt.send(Withdraw("a1", 28)).version == 8  # the state came back: balance 28
        with pytest.raises(Rejected, match="balance 0"):
            rt.send(Withdraw("a1", 1))
        assert rt.query(Balances, after=8).balance("a1") == 0  # replayed from the journal
        durable = rt.query(DurableBalances, after=8)
        assert durable.balance("a1") == 0
        assert durable.count() == 7  # resumed from its checkpoint: nothing applied twice
    with Runtime(url) as rt:
        rt.register(Account)
        snap = rt.store.storage.load_snapshot("Account-a1")
        assert snap is not None and snap.seq == 6


def test_a_concurrent_writer_makes_the_aggregate_reload_and_retry(tmp_path: Path) -> None:
    """Another writer appends to a live aggregate's stream: the stale actor retries."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    with Runtime(url) as one:
        one.register(Account)
        one.send(Deposit("a1", 5))
        other = open_store(url)  # a tool writing to the file behind the runtime's back
        other.append("Account-a1", [Deposited("a1", 7)], 1)  # one's actor is now stale
        other.close()
        result = one.send(Deposit("a1", 1))  # ConcurrencyError at version 1: reload, decide again
        assert (result.version, result.events[0].seq) == (3, 3)
        assert one.send(Withdraw("a1", 13)).version == 4  # its state includes two's deposit
        assert [e.seq for e in one.read_stream("Account-a1")] == [1, 2, 3, 4]


def test_a_second_runtime_on_one_sqlite_file_is_refused(tmp_path: Path) -> None:
    """A SQLite journal serves one runtime at a time: the second gets an error naming the
    file and the holder, and the first goes on; once it stops, the file is free."""
    url = f"sqlite:///{tmp_path / 'one.db'}"
    with Runtime(url) as first:
        first.register(Account)
        first.send(Deposit("a1", 5))
        second = Runtime(url).register(Account)
        with pytest.raises(
            StorageError, match=rf"one.db is in use by a reactor runtime .*pid {os.getpid()}"
        ):
            second.start()
        assert first.send(Deposit("a1", 1)).version == 2
    with Runtime(url) as again:
        assert again.read_stream("Account-a1")[-1].seq == 2


def test_stop_leaves_no_thread_and_no_actor() -> None:
    before = set(threading.enumerate())
    rt = Runtime("memory://", workers=3).register(Account, Balances, DurableBalances)
    rt.start()
    rt.subscribe(lambda e, env: None, name="quiet")
    futures = [rt.submit(Deposit(f"a{i}", 1)) for i in range(200)]
    rt.stop()
    assert all(f.get(5).version == 1 for f in futures)  # accepted work was finished
    assert set(threading.enumerate()) <= before


def test_a_failing_applier_rebuilds_the_actor_from_the_journal() -> None:
    """The events are durable when an applier raises: the caller gets the error, the actor
    is rebuilt from the journal (where the applier now succeeds) and serves on."""
    from tests.bank import Deposited as D

    failures = {"left": 1}
    original = Account._deposited

    def flaky(self: Account, e: D) -> None:
        if failures["left"]:
            failures["left"] -= 1
            raise RuntimeError("applier bug")
        original(self, e)

    class Flaky(Account, name="Flaky"):
        @applies(D)
        def _deposited(self, e: D) -> None:
            flaky(self, e)

    with Runtime("memory://") as rt:
        rt.register(Flaky)
        with pytest.raises(RuntimeError, match="applier bug"):
            rt.send(Deposit("f1", 5))
        assert [e.event for e in rt.read_stream("Flaky-f1")] == [D("f1", 5)]  # it was stored
        assert rt.send(Withdraw("f1", 5)).version == 2  # rebuilt: the balance is 5


def test_a_named_subscriber_resumes_after_its_checkpoint(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sub.db'}"
    seen: list[int] = []
    with Runtime(url) as rt:
        rt.register(Account)
        rt.send(Deposit("a1", 1))  # before the subscriber's first start: not delivered
        rt.subscribe(lambda e, env: seen.append(env.position), name="mailer")
        rt.send(Deposit("a1", 2))
    with Runtime(url) as rt:
        rt.register(Account)
        rt.send(Deposit("a1", 3))  # committed while the subscriber is not yet running
        rt.subscribe(lambda e, env: seen.append(env.position), name="mailer")
        rt.send(Deposit("a1", 4))
    assert seen == [2, 3, 4]


def test_a_named_subscribers_start_is_durable_when_subscribe_returns(tmp_path: Path) -> None:
    """Else a crash right after `subscribe` would restart it at the new head, and the
    events committed in between would never reach it (found by the SIGKILL test)."""
    url = f"sqlite:///{tmp_path / 'sub.db'}"
    with Runtime(url) as rt:
        rt.register(Account)
        rt.send(Deposit("a1", 1))
        rt.subscribe(lambda e, env: None, name="mailer")
        checkpoint = rt.store.storage.load_checkpoint("subscriber:mailer")
        assert checkpoint is not None and checkpoint.position == 1


def test_only_projections_answer_queries(rt: Runtime) -> None:
    from demos.shop.checkout import Checkout

    rt.register(Checkout)
    for not_a_projection in (Checkout, Account, int):
        with pytest.raises(RegistrationError, match="is not a registered projection"):
            rt.query(not_a_projection)
    with pytest.raises(
        AttributeError, match="Balances has no query 'totals'; its queries: balance"
    ):
        rt.query(Balances).totals  # noqa: B018


def test_health_reports_positions_failures_and_dead_letters(rt: Runtime) -> None:
    rt.subscribe(lambda e, env: None, types=[Deposited], name="quiet")
    last = rt.send(Deposit("a1", 5)).position
    rt.query(Balances, after=last).balance("a1")
    health = rt.health()
    assert (health.state, health.failure, health.head) == ("running", None, last)
    assert health.consumers["Balances"] == last and health.lag()["Balances"] == 0
    assert "quiet" in health.consumers
    assert (health.live_aggregates, health.aggregates_started, health.dead_letters) == (1, 1, 0)
    assert health.failures == {"root": 0, "projections": 0, "subscribers": 0, "aggregates": 0}
    rt.stop()
    assert rt.health().state == "stopped"


def test_a_consumer_stopped_before_it_went_live_takes_what_is_committed() -> None:
    """A stop can come before the router's Subscribed (a subscriber that started just
    before `stop()`): the consumer still takes every committed event and saves its place,
    as a live one would have."""

    class Mute(PooledActor):  # a router that never answers
        def on_receive(self, message: object) -> None:
            pass

    class Journal(PooledActor):  # keeps what it is told
        def __init__(self, dispatcher: Dispatcher) -> None:
            super().__init__(dispatcher)
            self.told: list[object] = []

        def on_receive(self, message: object) -> None:
            self.told.append(message)

    store = open_store("memory://")
    store.append("Account-a1", [Deposited("a1", 1), Deposited("a1", 2)], 0)
    pool, timers = Dispatcher(1, 10, "test-consumer"), Scheduler()
    balances = Balances()
    router, journal = Mute.spawn(pool), Journal.spawn(pool)
    try:
        consumer = ConsumerActor.spawn(
            pool,
            Balances.__reactor_type__(store.registry),
            balances,
            store,
            router,
            journal,
            timers,
            RetryPolicy(),
            checkpoints=True,
        )
        consumer.stop(block=True, timeout=5)
        assert balances.snapshot() == ({"a1": 3}, [1, 2])
        saved = [m.checkpoint.position for m in journal.proxy().told.get(timeout=5)]
        assert saved[-1] == 2
    finally:
        for ref in (router, journal):
            ref.stop()
        timers.stop()
        pool.shutdown()
