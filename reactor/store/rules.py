"""The rules every backend applies the same way before it writes: fences hold, expected
versions match, a re-append of stored event ids is idempotent (or a clash), leases taken one
name at a time where a backend has no statement for many."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from reactor.errors import ConcurrencyError, DuplicateEventId, FencedError
from reactor.store.records import Append, Fence, Lease, NewRecord, StoredEvent


def each_lease(
    acquire: Callable[[str, str, float], Lease | None], names: Sequence[str], owner: str, ttl: float
) -> dict[str, Lease]:
    """`acquire_leases` by `acquire` (a backend's `acquire_lease`) of one name at a time, in
    name order."""
    found = {name: acquire(name, owner, ttl) for name in sorted(set(names))}
    return {name: lease for name, lease in found.items() if lease is not None}


def check_fence(fence: Fence | None, lease: Lease | None) -> None:
    """Raise `FencedError` unless `lease` (the stored lease `fence` names) is at its epoch."""
    if fence is not None and (lease is None or lease.epoch != fence.epoch):
        raise FencedError(fence.lease, fence.epoch, lease.epoch if lease is not None else 0)


def fences_of(a: Append) -> tuple[Fence, ...]:
    """The fences of an append and of its checkpoint (most appends have none)."""
    if a.fence is None and (a.checkpoint is None or a.checkpoint.fence is None):
        return ()
    cp_fence = a.checkpoint.fence if a.checkpoint is not None else None
    return tuple(f for f in (a.fence, cp_fence) if f is not None)


def decide_append(
    a: Append,
    actual_version: int,
    stored: Callable[[str], StoredEvent | None],
    lease: Callable[[str], Lease | None],
) -> list[StoredEvent] | None:
    """Decide one append of a batch, before writing: its fences hold (`lease(name)` is the
    stored lease), then `check_append` (`stored(event_id)` the stored event with that id).
    The stored events of an idempotent re-append, None if it may be written; raises
    `FencedError`, `ConcurrencyError` or `DuplicateEventId`. Shared by the backends."""
    if a.fence is not None or a.checkpoint is not None:  # (most appends: no call)
        for fence in fences_of(a):
            check_fence(fence, lease(fence.lease))
    return check_append(
        a.stream_id,
        a.records,
        a.expected_version,
        actual_version,
        [stored(r.event_id) for r in a.records],
    )


def check_append(
    stream_id: str,
    records: Sequence[NewRecord],
    expected_version: int | None,
    actual_version: int,
    stored: Sequence[StoredEvent | None],
) -> list[StoredEvent] | None:
    """Decide an append before writing: the stored events if it is an idempotent re-append,
    None if it may be written, or raise `DuplicateEventId` / `ConcurrencyError`.

    `stored` holds, for each record, the stored event with its event id (or None).
    Shared by the backends so they agree on every case.
    """
    if len(records) > 1:
        ids = [r.event_id for r in records]
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise DuplicateEventId(dup, stream_id, 0)
    if any(s is not None for s in stored):
        return _already_stored(stream_id, records, expected_version, stored)
    if expected_version is not None and expected_version != actual_version:
        raise ConcurrencyError(stream_id, expected_version, actual_version)
    return None


def _already_stored(
    stream_id: str,
    records: Sequence[NewRecord],
    expected_version: int | None,
    stored: Sequence[StoredEvent | None],
) -> list[StoredEvent]:
    """Some event ids are stored: all of them at this place (idempotent), or a clash."""
    found = [s for s in stored if s is not None]
    first = stored[0]
    if (
        len(found) == len(records)
        and first is not None
        and all(
            s is not None and s.stream_id == stream_id and s.seq == first.seq + i
            for i, s in enumerate(stored)
        )
        and (expected_version is None or first.seq == expected_version + 1)
    ):
        return found
    clash = found[0]
    raise DuplicateEventId(clash.event_id, clash.stream_id, clash.seq)
