"""`Governance`: a runtime's policy, master key and audit setting, and the checks the parts
of the `Runtime` facade make with them (access before anything is done, the master key at
start, audit entries of what was done).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from reactor.actors.messages import SaveAudit
from reactor.actors.pooled import tell
from reactor.errors import ReactorError
from reactor.registry import qualified_name
from reactor.runtime.parts import Parts, sync
from reactor.security.audit import DENIED, DONE, FAILED, entry
from reactor.security.pii import KEY_CHECK, personal_fields
from reactor.security.policy import Action, Policy, Principal, Unauthorized
from reactor.specs import AggregateType, ConsumerType
from reactor.store.base import AuditRecord
from reactor.store.event_store import EventStore

T = TypeVar("T")


class Governance:
    """A runtime's policy, master key and audit setting, and the checks made with them.

    `audit` (default: on with a policy) writes every command's end to the audit trail;
    dead-letter orders, forgets, backups and restores are always written. Raises
    `ValueError` naming the option for a wrong value.
    """

    def __init__(
        self,
        policy: Policy | None,
        master_key: bytes | None,
        audit: bool | None,
        parts: Callable[[], Parts | None],
    ) -> None:
        if policy is not None and not isinstance(policy, Policy):
            raise ValueError(f"Runtime(policy=...) must be a Policy or None, got {policy!r}")
        if audit is not None and not isinstance(audit, bool):
            raise ValueError(f"Runtime(audit=...) must be True, False or None, got {audit!r}")
        if master_key is not None:
            from reactor.security.crypto import checked_master

            checked_master(master_key)  # MasterKeyError (a ValueError) saying what is wrong
        self.policy, self.master_key = policy, master_key
        self.audits = audit if audit is not None else policy is not None
        self._parts = parts

    def unlock(
        self,
        store: EventStore,
        aggregates: Iterable[AggregateType],
        consumers: Iterable[ConsumerType],
    ) -> None:
        """At start: open the store's data keys with the master key (`MasterKeyError` if
        it is the wrong one); without a master key, refuse a store that holds data keys, or
        registered classes that apply or handle events with personal fields."""
        if self.master_key is not None:
            store.unlock(self.master_key)
            return
        classes = {c for spec in aggregates for c in spec.appliers}
        for consumer in consumers:
            specs = (store.registry.get(name) for name in consumer.handlers)
            classes.update(spec.cls for spec in specs if spec is not None)
        personal = sorted(qualified_name(c) for c in classes if personal_fields(c))
        held = store.load_key(KEY_CHECK) is not None
        if personal or held:
            from reactor.security.crypto import MasterKeyError

            why = (
                f"{', '.join(personal)} hold personal data (fields marked pii)"
                if personal
                else f"{store.url} holds personal data encrypted with a master key"
            )
            raise MasterKeyError(
                f"{why}, and no master key was given: start with Runtime(..., "
                "master_key=<the 32 bytes>), read from an environment variable or a file"
            )

    def check(
        self,
        principal: Principal | None,
        action: Action,
        resource: str,
        detail: str = "",
        *,
        doing: str | None = None,
    ) -> None:
        """With a policy, raise `Unauthorized` (after queuing an audit entry of the denial,
        as action `doing`, by default `action`) unless `principal` may `action` `resource`.
        Without a policy, return."""
        if self.policy is None or self.policy.allows(principal, action, resource):
            return
        self.record(entry(principal, doing or action, resource, DENIED, detail))
        raise Unauthorized(principal, action, resource)

    def record(self, *entries: AuditRecord, wait: bool = False) -> None:
        """Queue audit entries for the journal's next group commit (`wait`: until stored)."""
        parts = self._parts()
        if parts is None:
            raise ReactorError("the runtime is not running: nothing can be audited")
        tell(parts.tree.journal, SaveAudit(entries))
        if wait:
            sync(parts.tree.journal, parts.settings.timeout)

    def audited(
        self,
        principal: Principal | None,
        action: str,
        resource: str,
        detail: str,
        run: Callable[[], T],
        said: Callable[[T], str] = str,
    ) -> T:
        """`run()`, its end written to the audit trail: done (`detail`, then what `said`
        tells of its result) or failed (the error's type), durably before this returns."""
        try:
            result = run()
        except BaseException as e:
            self.record(entry(principal, action, resource, FAILED, f"{detail}: {type(e).__name__}"))
            raise
        done = entry(principal, action, resource, DONE, f"{detail}: {said(result)}")
        self.record(done, wait=True)
        return result
