"""Personal data encrypted per subject, and crypto-shredding: a `KeyRing` seals bytes with
AES-GCM under the subject's data key, keeps data keys wrapped by the application's master
key in a `KeyStore`, and `forget` destroys a key. Needs the `crypto` extra (`cryptography`).
"""

from __future__ import annotations

import hashlib
import os
import struct
import threading
from collections.abc import Collection, Iterable
from typing import NamedTuple, Protocol, runtime_checkable

from reactor.errors import ReactorError
from reactor.security.pii import KEY_CHECK


class MissingDependency(ReactorError, ImportError):
    """An optional dependency of reactor is not installed; the message names the extra."""


try:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
except ImportError as e:
    raise MissingDependency(
        "reactor.security.crypto (Runtime(master_key=...)) needs the cryptography package: "
        "pip install 'reactor-actors[crypto]'"
    ) from e

TOKEN_VERSION = 1  # the first byte of every token, wrapped key and key check
_KEY_ID, _NONCE, _TAG = 8, 12, 16
_HEADER = 1 + _KEY_ID  # version, key id
_OVERHEAD = _HEADER + _NONCE + _TAG  # 37 bytes on top of the plaintext
_CHECK_TEXT = b"reactor master key check"
_length = struct.Struct(">I").pack


class CryptoError(ReactorError, ValueError):
    """A token or a wrapped key cannot be opened (altered, moved to another subject, field
    or event, truncated, of an unknown version), or a subject id is not usable."""

    def __init__(self, subject: str, reason: str) -> None:
        self.subject, self.reason = subject, reason
        super().__init__(f"subject {subject!r}: {reason}")


class MasterKeyError(ReactorError, ValueError):
    """The master key is malformed, or is not the key this store's data keys were wrapped
    with (found at start by the key check, before any data is read)."""


@runtime_checkable
class KeyStore(Protocol):
    """Where wrapped data keys live, by subject id: each storage backend provides one
    (a table `keys (subject TEXT PRIMARY KEY, wrapped BLOB NOT NULL)`).

    Every method is thread-safe and durable when it returns; keys are opaque bytes.
    """

    def save_key(self, subject: str, wrapped: bytes) -> bytes:
        """Store `wrapped` as the subject's key unless it has one already; return the key
        now stored (the existing one if there was). Atomic: racing writers get one winner."""
        ...

    def load_key(self, subject: str) -> bytes | None:
        """The subject's wrapped key, or None."""
        ...

    def load_keys(self, subjects: Collection[str]) -> dict[str, bytes]:
        """The wrapped keys of those `subjects` that have one, in one round trip."""
        ...

    def delete_key(self, subject: str) -> bool:
        """Destroy the subject's key (it must not survive in the store); False if none."""
        ...


class MemoryKeyStore:
    """A `KeyStore` in a dict, for tests and `memory://` stores."""

    def __init__(self) -> None:
        self._keys: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def save_key(self, subject: str, wrapped: bytes) -> bytes:
        with self._lock:
            return self._keys.setdefault(subject, bytes(wrapped))

    def load_key(self, subject: str) -> bytes | None:
        with self._lock:
            return self._keys.get(subject)

    def load_keys(self, subjects: Collection[str]) -> dict[str, bytes]:
        with self._lock:
            return {s: self._keys[s] for s in subjects if s in self._keys}

    def delete_key(self, subject: str) -> bool:
        with self._lock:
            return self._keys.pop(subject, None) is not None


class _Key(NamedTuple):
    id: bytes  # random, so a key made after a forget never opens the old tokens
    aead: AESGCM
    header: bytes  # a token's first bytes: version and key id
    aad: bytes  # its associated data but the caller's: header and subject (`_aad`)


class _Entry(NamedTuple):
    """What the cache knows of a subject: its live key (None: it has none) and ids of keys
    known destroyed (their tokens read as forgotten without asking the store)."""

    live: _Key | None
    dead: frozenset[bytes]


class KeyRing:
    """Seals and opens personal data per subject, and forgets subjects. Thread-safe.

    A token is `version (1 byte) | key id (8) | nonce (12) | AES-GCM ciphertext + tag (16)`:
    37 bytes more than the plaintext. Its associated data binds the version, the key id,
    the subject and the caller's `aad` (name the event type and field there), so a token
    copied to another subject, field or event fails to open. Data keys (AES-256, one per
    subject, made on first use) are kept wrapped by the master key in `keys`, and the
    `cache_size` most recently loaded ones unwrapped in memory. Start-up checks the master
    key against the key check stored under `KEY_CHECK` (stored there by the first start).
    Raises `MasterKeyError` for a malformed or wrong master key.
    """

    def __init__(self, master_key: bytes, keys: KeyStore, *, cache_size: int = 10_000) -> None:
        master = checked_master(master_key)
        if cache_size < 1:
            raise ValueError(f"KeyRing cache_size must be >= 1, got {cache_size!r}")
        self.keys, self.cache_size = keys, cache_size
        self.fingerprint = _fingerprint(master)
        self._master = AESGCM(master)
        self._cache: dict[str, _Entry] = {}  # in load order: the oldest is evicted first
        self._lock = threading.Lock()
        self._forgets = 0  # counts forget() calls: a read racing with one caches nothing
        self._check_master()

    def encrypt(self, subject: str, plaintext: bytes, aad: bytes) -> bytes:
        """The token of `plaintext` under the subject's data key (made if it has none)."""
        key = self._key_for_writing(subject)
        nonce = os.urandom(_NONCE)
        return key.header + nonce + key.aead.encrypt(nonce, plaintext, key.aad + aad)

    def decrypt(self, subject: str, token: bytes, aad: bytes) -> bytes | None:
        """The plaintext of a token from `encrypt(subject, ..., aad)`; None if the key it was
        sealed with is gone (the subject was forgotten). `CryptoError` if it does not open:
        altered, truncated, or moved from another subject, field or event."""
        _check_subject(subject)
        if len(token) < _OVERHEAD or token[0] != TOKEN_VERSION:
            reason = (
                f"a token is at least {_OVERHEAD} bytes, got {len(token)}: truncated or not a token"
                if len(token) < _OVERHEAD
                else f"unknown token version {token[0]} (this reactor reads {TOKEN_VERSION})"
            )
            raise CryptoError(subject, reason)
        key = self._key_for_reading(subject, token[1:_HEADER])
        if key is None:
            return None
        body, nonce = token[_HEADER + _NONCE :], token[_HEADER : _HEADER + _NONCE]
        try:
            return key.aead.decrypt(nonce, body, key.aad + aad)
        except InvalidTag:
            raise CryptoError(
                subject,
                "the token does not open: it was altered, or copied from another field, "
                "event or subject (its associated data differs)",
            ) from None

    def forget(self, subject: str) -> bool:
        """Destroy the subject's data key (crypto-shredding): its tokens decrypt to None from
        now on; a later `encrypt` makes a new key. False if it had no key.

        An `encrypt` for the subject running meanwhile may still seal with the destroyed key
        (that value then reads as forgotten); other processes sharing the store keep a key
        they cached until they `evict` it."""
        _check_subject(subject)
        with self._lock:
            self._forgets += 1
            old = self._cache.pop(subject, None)
        stored = self.keys.load_key(subject)
        existed = self.keys.delete_key(subject)
        dead = set(old.dead) if old is not None else set()
        if old is not None and old.live is not None:
            dead.add(old.live.id)
        if stored is not None:
            dead.add(stored[1:_HEADER])
        with self._lock:
            self._forgets += 1
            self._cache[subject] = _Entry(None, frozenset(dead))
            self._trim()
        return existed

    def preload(self, subjects: Iterable[str]) -> None:
        """Load and unwrap the keys of `subjects` not cached yet in one store round trip
        (before replaying many events); at most `cache_size` stay cached."""
        with self._lock:
            missing = [s for s in dict.fromkeys(subjects) if s not in self._cache]
            forgets = self._forgets
        for subject in missing:
            _check_subject(subject)
        for subject, wrapped in self.keys.load_keys(missing).items():
            self._remember(subject, self._unwrap(subject, wrapped), (), forgets)

    def evict(self, subject: str) -> None:
        """Drop the subject's cached key (another process forgot it: do call this then)."""
        with self._lock:
            self._cache.pop(subject, None)

    @property
    def cached(self) -> int:
        """How many subjects the cache holds (at most `cache_size`)."""
        return len(self._cache)

    def __repr__(self) -> str:
        return f"KeyRing(master key {self.fingerprint}, {self.cached} subjects cached)"

    # -- keys --------------------------------------------------------------------------------

    def _key_for_writing(self, subject: str) -> _Key:
        forgets = self._forgets
        entry = self._cache.get(subject)  # entries are immutable: no lock needed to read one
        if entry is not None and entry.live is not None:
            return entry.live
        _check_subject(subject)
        stored = self.keys.load_key(subject)
        if stored is None:
            fresh = self._wrap(subject, AESGCM.generate_key(256), os.urandom(_KEY_ID))
            stored = self.keys.save_key(subject, fresh)
        key = self._unwrap(subject, stored)
        self._remember(subject, key, (), forgets)
        return key

    def _key_for_reading(self, subject: str, key_id: bytes) -> _Key | None:
        forgets = self._forgets
        entry = self._cache.get(subject)
        if entry is not None:
            if entry.live is not None and entry.live.id == key_id:
                return entry.live
            if key_id in entry.dead:
                return None
        stored = self.keys.load_key(subject)
        key = None if stored is None else self._unwrap(subject, stored)
        if key is not None and key.id == key_id:
            self._remember(subject, key, (), forgets)
            return key
        # A key is stored before any token made with it, and key ids are random: a token
        # whose key is not in the store now was made with a key destroyed for good.
        self._remember(subject, key, (key_id,), forgets)
        return None

    def _remember(
        self, subject: str, live: _Key | None, dead: Iterable[bytes], forgets: int
    ) -> None:
        """Cache what was read from the store, unless a forget() ran since (it may be stale)."""
        with self._lock:
            if self._forgets != forgets:
                return
            old = self._cache.pop(subject, None)
            gone = frozenset(dead)
            if old is not None:
                gone |= old.dead
                if old.live is not None and (live is None or old.live.id != live.id):
                    gone |= {old.live.id}
            self._cache[subject] = _Entry(
                live if live is None or live.id not in gone else None, gone
            )
            self._trim()

    def _trim(self) -> None:
        while len(self._cache) > self.cache_size:
            del self._cache[next(iter(self._cache))]

    def _wrap(self, subject: str, data_key: bytes, key_id: bytes) -> bytes:
        header = _VERSION + key_id
        nonce = os.urandom(_NONCE)
        return header + nonce + self._master.encrypt(nonce, data_key, _aad(header, subject, b"key"))

    def _unwrap(self, subject: str, wrapped: bytes) -> _Key:
        header = wrapped[:_HEADER]
        if len(wrapped) != _OVERHEAD + 32 or wrapped[0] != TOKEN_VERSION:
            raise CryptoError(subject, f"its stored data key is malformed ({len(wrapped)} bytes)")
        nonce, body = wrapped[_HEADER : _HEADER + _NONCE], wrapped[_HEADER + _NONCE :]
        try:
            data_key = self._master.decrypt(nonce, body, _aad(header, subject, b"key"))
        except InvalidTag:
            raise CryptoError(
                subject,
                "its stored data key does not open with the master key: the key row was "
                "altered or copied from another subject",
            ) from None
        return _Key(header[1:], AESGCM(data_key), header, _aad(header, subject, b""))

    def _check_master(self) -> None:
        """Store the key check on first start; on later starts, open it or refuse to run."""
        stored = self.keys.load_key(KEY_CHECK)
        if stored is None:
            nonce = os.urandom(_NONCE)
            check = _VERSION + bytes.fromhex(self.fingerprint) + nonce
            check += self._master.encrypt(nonce, _CHECK_TEXT, check)
            stored = self.keys.save_key(KEY_CHECK, check)
        head = 1 + 4 + _NONCE
        expected = stored[1:5].hex()
        try:
            opened = self._master.decrypt(stored[5:head], stored[head:], stored[:head])
        except (InvalidTag, ValueError):
            opened = b""
        if opened != _CHECK_TEXT:
            raise MasterKeyError(
                f"wrong master key: this store's data keys were wrapped with the master key of "
                f"fingerprint {expected}, not this one ({self.fingerprint}); start with the "
                "original key (a different key cannot read the personal data stored)"
            )


_VERSION = bytes([TOKEN_VERSION])


def _aad(header: bytes, subject: str, aad: bytes) -> bytes:
    """The associated data of a token or a wrapped key: header, subject (length-prefixed)
    and the caller's bytes."""
    text = subject.encode()
    return b"".join((header, _length(len(text)), text, aad))


def _check_subject(subject: str) -> None:
    if not isinstance(subject, str) or not subject:
        raise CryptoError(str(subject), f"a subject id must be a non-empty str, got {subject!r}")


def _fingerprint(master: bytes) -> str:
    """8 hex digits naming a master key in messages (a hash: it reveals nothing of it)."""
    return hashlib.sha256(b"reactor master key fingerprint" + master).digest()[:4].hex()


def checked_master(key: object) -> bytes:
    """The master key as bytes; `MasterKeyError` saying what is wrong with it and the fix."""
    fix = "generate one with os.urandom(32) and keep it outside the store (env var, file)"
    if key is None:
        raise MasterKeyError(f"no master key given: pass master_key=<32 bytes>; {fix}")
    if isinstance(key, str):
        raise MasterKeyError(
            f"master_key must be 32 bytes, got a str of {len(key)} characters: decode it first, "
            "e.g. bytes.fromhex(os.environ['APP_MASTER_KEY']) or base64.b64decode(...)"
        )
    if not isinstance(key, bytes | bytearray | memoryview):
        raise MasterKeyError(f"master_key must be 32 bytes, got {type(key).__name__}; {fix}")
    master = bytes(key)
    if len(master) != 32:
        raise MasterKeyError(f"master_key must be 32 bytes (AES-256), got {len(master)}; {fix}")
    if len(set(master)) == 1:
        raise MasterKeyError(f"master_key is one byte repeated, a placeholder; {fix}")
    return master
