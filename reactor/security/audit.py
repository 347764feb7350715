"""The audit trail's entries as reactor writes them: who (a `Principal`) did what (an
action on a resource), when, and how it ended; and the principal as stored in the metadata
of the events it caused. An entry never holds a command's or an event's payload.
"""

from __future__ import annotations

import time
from typing import Any

from reactor.errors import Rejected
from reactor.registry import qualified_name
from reactor.security.policy import Principal
from reactor.store.records import AuditRecord

ACCEPTED, REJECTED, DENIED, FAILED, DONE = "accepted", "rejected", "denied", "failed", "done"
DETAIL = 300  # characters of a rejection's reason kept


def entry(
    principal: Principal | None, action: str, resource: str, outcome: str, detail: str = ""
) -> AuditRecord:
    """An entry made now; `principal` None is the runtime itself (a saga, the CLI's own)."""
    return AuditRecord(
        timestamp=time.time(),
        principal="" if principal is None else principal.id,
        roles=() if principal is None else tuple(sorted(principal.roles)),
        action=action,
        resource=resource,
        outcome=outcome,
        detail=detail,
    )


def command_entry(
    principal: Principal | None,
    command: object,
    where: str,
    error: BaseException | None = None,
) -> AuditRecord:
    """The entry of a command's end: accepted (no `error`), rejected (with the domain's
    reason, cut to `DETAIL` characters) or failed (the error's type only: its message may
    quote the command's data). `where` names its stream and command id."""
    if error is None:
        return entry(principal, "send", qualified_name(type(command)), ACCEPTED, where)
    if isinstance(error, Rejected):
        outcome, detail = REJECTED, f"{where}: {str(error)[:DETAIL]}"
    else:
        outcome, detail = FAILED, f"{where}: {type(error).__name__}"
    return entry(principal, "send", qualified_name(type(command)), outcome, detail)


def principal_metadata(principal: Principal | None) -> dict[str, Any] | None:
    """What the events a principal caused keep in their metadata: `{"principal": {"id":
    ..., "roles": [...]}}` (None for no principal)."""
    if principal is None:
        return None
    return {"principal": {"id": principal.id, "roles": sorted(principal.roles)}}
