"""What an aggregate keeps for lineage besides its events: why a command was sent (in the
metadata of the events it stores), and a note of a command that stored no event (rejected,
failed, or deciding nothing) when someone may ask about it."""

from __future__ import annotations

import time
from typing import Any

from reactor.actors.messages import Handle
from reactor.errors import Rejected
from reactor.store.base import CommandNote


def traced(msg: Handle) -> bool:
    """Whether the command's events keep its lineage in their metadata: a consumer sent
    it, or its caller chose its correlation id (a plain command: no, nothing is added)."""
    return msg.cause is not None or msg.correlation_id != msg.command_id


def with_cause(msg: Handle, metadata: dict[str, Any] | None) -> dict[str, Any]:
    """`metadata` plus the command's class name and, if a consumer sent it, its cause and
    sender (for a `traced` command)."""
    lineage = {"command": type(msg.command).__name__}
    if msg.cause is not None:
        lineage.update(cause=msg.cause.event_id, by=msg.cause.by)
    return {**metadata, **lineage} if metadata else lineage


def note_of(msg: Handle, stream_id: str, error: BaseException | None) -> CommandNote | None:
    """The note of a command that stored no event, if it can be asked about: a consumer sent
    it, or its caller chose its id or its correlation id (else None: nobody can name it)."""
    if msg.cause is None and not msg.given_id and msg.correlation_id == msg.command_id:
        return None
    if error is None:
        outcome, text = "accepted", ""
    else:
        outcome = "rejected" if isinstance(error, Rejected) else "failed"
        text = f"{type(error).__name__}: {error}"
    return CommandNote(
        command_id=msg.command_id,
        stream_id=stream_id,
        type=type(msg.command).__name__,
        outcome=outcome,
        error=text,
        correlation_id=msg.correlation_id,
        causation_id=None if msg.cause is None else msg.cause.event_id,
        by="" if msg.cause is None else msg.cause.by,
        timestamp=time.time(),
    )
