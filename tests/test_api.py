"""The public API is `reactor.__all__`: nothing leaks, nothing goes missing."""

from __future__ import annotations

import reactor

PUBLIC = {
    "Aggregate",
    "AuditRecord",
    "Codec",
    "ClusterError",
    "ClusterStatus",
    "CommandResult",
    "ConcurrencyError",
    "DeadLetter",
    "DecodeError",
    "DuplicateEventId",
    "EncodeError",
    "Envelope",
    "EventStore",
    "FencedError",
    "Health",
    "InvalidCommand",
    "NewEvent",
    "Policy",
    "Principal",
    "Projection",
    "ReactorError",
    "Rebuilt",
    "Registry",
    "RegistrationError",
    "Rejected",
    "RemoteError",
    "RetryPolicy",
    "Runtime",
    "RuntimeStopped",
    "Saga",
    "StorageError",
    "TamperedError",
    "Timeout",
    "TraceNode",
    "Unauthorized",
    "UnknownCommand",
    "UnknownEventType",
    "UnknownTraceId",
    "applies",
    "command",
    "default_registry",
    "event",
    "handles",
    "on",
    "open_store",
    "upcaster",
}


def test_all_is_the_public_api() -> None:
    assert set(reactor.__all__) == PUBLIC
    for name in PUBLIC:
        assert getattr(reactor, name) is not None


def test_every_error_is_a_reactor_error_and_a_builtin() -> None:
    builtins = {
        "ClusterError": ValueError,
        "ConcurrencyError": Exception,
        "DecodeError": ValueError,
        "DuplicateEventId": ValueError,
        "EncodeError": TypeError,
        "InvalidCommand": ValueError,
        "RegistrationError": TypeError,
        "RemoteError": Exception,
        "RuntimeStopped": RuntimeError,
        "TamperedError": Exception,
        "Timeout": TimeoutError,
        "Unauthorized": PermissionError,
        "UnknownCommand": LookupError,
        "UnknownEventType": LookupError,
        "UnknownTraceId": LookupError,
    }
    for name, builtin in builtins.items():
        cls = getattr(reactor, name)
        assert issubclass(cls, reactor.ReactorError) and issubclass(cls, builtin), name
