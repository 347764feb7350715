"""Governance building blocks: access control (`policy`), the audit trail's entries
(`audit`), encrypted personal data with crypto-shredding (`crypto`, `pii`, and `snapshots`
for aggregate state; `crypto` needs the `crypto` extra) and the tamper-evident hash chain
of the journal (`chain`). Each module is self-contained; import it directly.
"""
