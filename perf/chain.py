"""The cost of the journal's hash chain: hashing one event (reactor.security.chain) next
to a batched SQLite append of the same event, per event, measured in the same run.

    python -m perf.chain
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from perf.journal import BATCH, OurWriter, _ours
from perf.report import rate, row
from reactor.events import new_id
from reactor.security.chain import GENESIS, event_hash

BATCHES, HASHES = 100, 200_000


def main() -> None:
    print(" ".join(__doc__.split("\n\n")[0].split()))
    with tempfile.TemporaryDirectory() as tmp:
        writer = OurWriter(_ours(Path(tmp, "chain.db")))

        def batches() -> None:
            for _ in range(BATCHES):
                writer.append_batch(BATCH)

        append_rate = rate(BATCH * BATCHES, batches)
        stored = next(iter(writer.store.storage.read_all(limit=1)))
        writer.store.close()
    # an event of ~200 bytes in all, with metadata and correlation ids as the runtime writes
    event = stored._replace(metadata=b'{"principal":"teller-7"}', correlation_id=new_id())
    size = sum(len(str(v)) for v in event)

    def hashes() -> None:
        for _ in range(HASHES):
            event_hash(GENESIS, event)

    hash_rate = rate(HASHES, hashes)
    row(
        f"event_hash, one event of ~{size} bytes",
        1e9 / hash_rate,
        1e9 / append_rate,
        f"append_batch of {BATCH}, per event",
        "ns/event",
    )


if __name__ == "__main__":
    main()
