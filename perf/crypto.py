"""The cost of encrypting personal data (reactor.security): one short field sealed and
opened with a cached subject key, next to orjson.dumps of the same value; a whole event
through the codec with its personal field sealed, next to the plain codec; measured in
the same run.

    python -m perf.crypto
"""

from __future__ import annotations

import attrs
import orjson

from perf.report import rate, row
from reactor import Codec, Registry, event
from reactor.security.crypto import KeyRing, MemoryKeyStore
from reactor.security.pii import personal_fields, seal, unseal

registry = Registry()


@event("bench.Registered", registry=registry)
@attrs.frozen
class Registered:
    customer_id: str
    email: str = attrs.field(metadata={"pii": "customer_id"})
    plan: str = "basic"


N, SUBJECTS = 100_000, 2_000


def main() -> None:
    print(" ".join(__doc__.split("\n\n")[0].split()))
    ring = KeyRing(bytes(range(32)), MemoryKeyStore())
    value, aad = "ann@example.com", b"bench.Registered/email"

    def fields() -> None:
        for _ in range(N):
            ring.decrypt("c1", ring.encrypt("c1", orjson.dumps(value), aad), aad)

    def dumps() -> None:
        for _ in range(N):
            orjson.dumps(value)

    row(
        "encrypt + decrypt one short field",
        1e9 / rate(N, fields),
        1e9 / rate(N, dumps),
        "orjson.dumps(same value)",
        "ns/op",
    )

    codec, plan = Codec(registry), Codec(registry).plan(Registered)
    pii = personal_fields(Registered)
    e = Registered("c1", value)
    name, version, _ = codec.encode(e)

    def sealed() -> None:
        for _ in range(N):
            raw = orjson.dumps(seal(ring, pii, plan.to_json(e), name))
            plan.from_json(unseal(ring, pii, orjson.loads(raw), name))

    def plain() -> None:
        for _ in range(N):
            codec.decode(name, version, codec.encode(e)[2])

    row(
        "event encode + decode, email sealed",
        1e9 / rate(N, sealed),
        1e9 / rate(N, plain),
        "codec encode + decode",
        "ns/event",
    )

    def first_use() -> None:  # a new subject: make, wrap and save its data key
        fresh = KeyRing(bytes(range(32)), MemoryKeyStore(), cache_size=SUBJECTS)
        for i in range(SUBJECTS):
            fresh.encrypt(f"s{i}", b'"x"', aad)

    def hot() -> None:
        for _ in range(SUBJECTS):
            ring.encrypt("c1", b'"x"', aad)

    row(
        "encrypt for a new subject (makes its key)",
        1e9 / rate(SUBJECTS, first_use),
        1e9 / rate(SUBJECTS, hot),
        "encrypt, cached key",
        "ns/op",
    )


if __name__ == "__main__":
    main()
