"""Governing: the part of the `Runtime` facade that forgets subjects (crypto-shredding),
verifies the journal's hash chain and reads the audit trail (`Governance` holds the policy,
the master key and the audit setting, and makes the checks the other parts ask for).
"""

from __future__ import annotations

from reactor.runtime.core import RuntimeCore
from reactor.runtime.parts import sync
from reactor.security.policy import Principal
from reactor.store.base import AuditRecord


class Governing(RuntimeCore):
    """The governing part of `Runtime`."""

    def forget(self, subject: str, *, principal: Principal | None = None) -> bool:
        """Crypto-shred a subject: destroy its data key, so that its personal fields read as
        masked everywhere from now on (in `read_stream`, in aggregates, which live actors
        holding them rebuild, and in projections rebuilt from the journal); the events stay
        and the hash chain holds. Recorded in the audit trail (by `principal`) before it
        returns. False if the subject had no key. Needs `Runtime(master_key=...)`."""
        parts = self._running_parts()

        def shred() -> bool:
            existed = parts.store.forget(subject)
            parts.host.reload(subject)
            return existed

        def said(existed: bool) -> str:
            return "its key destroyed" if existed else "it had no key"

        return self._gov.audited(principal, "forget", subject, f"subject {subject}", shred, said)

    def verify(self) -> int:
        """Walk the journal's hash chain; the number of events checked. Raises
        `TamperedError` naming the first row edited, deleted, inserted or reordered."""
        return self._running_parts().store.verify()

    def audit(
        self,
        *,
        since: float | None = None,
        principal: str | Principal | None = None,
        limit: int | None = None,
    ) -> list[AuditRecord]:
        """The audit trail (from timestamp `since`, of one principal), oldest first; what
        was queued before this call is stored first."""
        parts = self._running_parts()
        sync(parts.tree.journal, self.settings.timeout)
        who = principal.id if isinstance(principal, Principal) else principal
        return parts.store.audit(since, who, limit)
