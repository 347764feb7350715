"""reactor: an actor-based, in-process reactive runtime for event-driven Python.

The public API is this module's `__all__`; everything else is internal.
"""

from reactor.cluster.identity import ClusterError
from reactor.cluster.status import ClusterStatus
from reactor.cluster.wire import RemoteError
from reactor.codec import Codec
from reactor.domain import Aggregate, Projection, Saga, applies, handles, on
from reactor.errors import (
    ConcurrencyError,
    DecodeError,
    DuplicateEventId,
    EncodeError,
    FencedError,
    InvalidCommand,
    ReactorError,
    RegistrationError,
    Rejected,
    RuntimeStopped,
    StorageError,
    Timeout,
    UnknownCommand,
    UnknownEventType,
)
from reactor.events import CommandResult, Envelope, NewEvent, command, event, upcaster
from reactor.faults import DeadLetter, RetryPolicy
from reactor.registry import Registry, default_registry
from reactor.runtime import Health, Runtime
from reactor.runtime.lineage import TraceNode, UnknownTraceId
from reactor.runtime.rebuild import Rebuilt
from reactor.security.chain import TamperedError
from reactor.security.policy import Policy, Principal, Unauthorized
from reactor.store import EventStore, open_store
from reactor.store.records import AuditRecord

__version__ = "0.1.0"

__all__ = [
    "Aggregate",
    "AuditRecord",
    "ClusterError",
    "ClusterStatus",
    "Codec",
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
    "RegistrationError",
    "Registry",
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
]
