"""Run by test_store_durability in a subprocess: append batches to a SQLite journal and
print each acknowledged append's last position and stream version, until killed."""

from __future__ import annotations

import sys

from reactor.store import Append, NewRecord, open_storage

BATCH = 3  # events per append: a half-written append would leave a version not divisible by 3


def main(url: str) -> None:
    store = open_storage(url)
    n = store.last_position()
    while True:
        n += 1
        appends = [
            Append(
                f"S-{(n + k) % 5}",
                [NewRecord(f"{n}-{k}-{i}", "t.X", 1, b'{"n": %d}' % n, 0.0) for i in range(BATCH)],
                None,
            )
            for k in range(2)
        ]
        for outcome in store.append_batch(appends):
            last = outcome.result()[-1]
            print(f"{last.event_id} {last.stream_id} {last.seq} {last.position}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
