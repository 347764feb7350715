"""Threads racing to append to one stream with expected versions: exactly one wins each
version, and the stream stays gapless."""

from __future__ import annotations

import threading
from collections import Counter

from reactor import ConcurrencyError
from reactor.store import NewRecord, Storage

THREADS, VERSIONS = 6, 40


def test_exactly_one_writer_wins_each_version(storage: Storage) -> None:
    wins: list[tuple[int, int]] = []  # (version taken, thread)
    start = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            start.wait()
            version = 0
            while version < VERSIONS:
                record = NewRecord(f"t{n}-v{version}", "t.Won", 1, b"{}", 0.0)
                try:
                    storage.append("Race", [record], version)
                    wins.append((version, n))
                except ConcurrencyError as e:
                    assert e.actual > version
                version = storage.stream_version("Race")
        except BaseException as e:  # reported below, in the test's thread
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    counts = Counter(version for version, _ in wins)
    assert sorted(counts) == list(range(VERSIONS)) and set(counts.values()) == {1}
    stored = list(storage.read_stream("Race"))
    assert [e.seq for e in stored] == list(range(1, VERSIONS + 1))
    winners = dict(wins)
    assert [e.event_id for e in stored] == [f"t{winners[v]}-v{v}" for v in range(VERSIONS)]


def test_concurrent_batches_keep_positions_strictly_increasing(storage: Storage) -> None:
    """Many threads appending to their own streams: positions are 1..n with no gap."""

    def writer(n: int) -> None:
        for i in range(25):
            storage.append(f"S-{n}", [NewRecord(f"{n}-{i}", "t.X", 1, b"{}", 0.0)], i)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    stored = list(storage.read_all())
    assert [e.position for e in stored] == list(range(1, THREADS * 25 + 1))
    for n in range(THREADS):
        assert [e.seq for e in storage.read_stream(f"S-{n}")] == list(range(1, 26))
