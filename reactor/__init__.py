"""reactor: an actor-based, in-process reactive runtime for event-driven Python.

The public API is this module's `__all__`; everything else is internal.
"""

from reactor.codec import Codec
from reactor.errors import (
    ConcurrencyError,
    DecodeError,
    DuplicateEventId,
    EncodeError,
    ReactorError,
    RegistrationError,
    StorageError,
    UnknownEventType,
)
from reactor.events import Envelope, NewEvent, command, event, upcaster
from reactor.registry import Registry, default_registry
from reactor.store import EventStore, open_store

__version__ = "0.1.0"

__all__ = [
    "Codec",
    "ConcurrencyError",
    "DecodeError",
    "DuplicateEventId",
    "EncodeError",
    "Envelope",
    "EventStore",
    "NewEvent",
    "ReactorError",
    "RegistrationError",
    "Registry",
    "StorageError",
    "UnknownEventType",
    "command",
    "default_registry",
    "event",
    "open_store",
    "upcaster",
]
