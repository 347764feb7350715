"""The exception family: every reactor error derives from `ReactorError`.

Each error also subclasses the builtin a caller would catch anyway, names the stream,
position or type involved in its message, and keeps the same facts as attributes.
"""

from __future__ import annotations


class ReactorError(Exception):
    """Base of every error reactor raises on purpose."""


class RegistrationError(ReactorError, TypeError):
    """An event, command or upcaster declaration is wrong (found at import or start)."""


class ConcurrencyError(ReactorError):
    """An append's expected version did not match the stream's actual version."""

    def __init__(self, stream_id: str, expected: int, actual: int) -> None:
        self.stream_id, self.expected, self.actual = stream_id, expected, actual
        super().__init__(
            f"stream {stream_id!r}: expected version {expected}, but it is at {actual}"
        )


class FencedError(ReactorError):
    """A write depended on a lease that another owner has taken over since (a stale holder,
    e.g. a consumer or shard owner that lost its lease, must not write)."""

    def __init__(self, lease: str, epoch: int, actual: int) -> None:
        self.lease, self.epoch, self.actual = lease, epoch, actual
        super().__init__(
            f"lease {lease!r} was held at epoch {epoch}, but it is now at epoch {actual}: "
            "another owner took it over, so this write is refused"
        )


class DuplicateEventId(ReactorError, ValueError):
    """An appended event id is already stored somewhere other than the place appended to."""

    def __init__(self, event_id: str, stream_id: str, seq: int) -> None:
        self.event_id, self.stream_id, self.seq = event_id, stream_id, seq
        where = f"stream {stream_id!r} at seq {seq}" if seq else "the same append"
        super().__init__(f"event id {event_id!r} is already used by {where}")


class UnknownEventType(ReactorError, LookupError):
    """A stored or requested event type name has no registered class."""

    def __init__(self, type_name: str, *, stream_id: str = "", seq: int = 0, position: int = 0):
        self.type, self.stream_id, self.seq, self.position = type_name, stream_id, seq, position
        where = f" (stream {stream_id!r}, seq {seq}, position {position})" if position else ""
        super().__init__(
            f"unknown event type {type_name!r}{where}: no class is registered under that name; "
            "import the module that declares it with @event"
        )


class DecodeError(ReactorError, ValueError):
    """Stored bytes could not be turned back into an event (or a snapshot, a checkpoint)."""

    def __init__(
        self,
        reason: str,
        *,
        type_name: str = "",
        stream_id: str = "",
        seq: int = 0,
        position: int = 0,
    ) -> None:
        self.reason, self.type = reason, type_name
        self.stream_id, self.seq, self.position = stream_id, seq, position
        where = ", ".join(
            part
            for part in (
                f"type {type_name!r}" if type_name else "",
                f"stream {stream_id!r}" if stream_id else "",
                f"seq {seq}" if seq else "",
                f"position {position}" if position else "",
            )
            if part
        )
        super().__init__(f"cannot decode {where or 'value'}: {reason}")


class EncodeError(ReactorError, TypeError):
    """A value could not be encoded (an unsupported type, an integer beyond 64 bits)."""


class StorageError(ReactorError):
    """The store cannot be opened or used: missing file, foreign database, closed store."""


class Rejected(ReactorError):
    """The domain said no: a command handler refused the command. Nothing is stored and it
    is never retried."""


class UnknownCommand(ReactorError, LookupError):
    """No registered aggregate handles this command class."""


class InvalidCommand(ReactorError, ValueError):
    """A command cannot be routed as given: its key field is missing, blank or of a type
    that cannot name an aggregate. Nothing was sent."""


class RuntimeStopped(ReactorError, RuntimeError):
    """The runtime is stopped (or stopping) and takes no more work."""


class Timeout(ReactorError, TimeoutError):
    """An answer did not come within the timeout."""
