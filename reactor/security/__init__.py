"""Governance building blocks: access control (`policy`), encrypted personal data with
crypto-shredding (`crypto`, `pii`; they need the `crypto` extra) and the tamper-evident
hash chain of the journal (`chain`). Each module is self-contained; import it directly.
"""
