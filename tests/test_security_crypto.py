"""The key ring: per-subject encryption, the master key check, forgetting, the key cache."""

from __future__ import annotations

import importlib
import os
import sys
import threading
from collections import Counter
from collections.abc import Collection

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reactor.errors import ReactorError
from reactor.security.crypto import (
    KEY_CHECK,
    TOKEN_VERSION,
    CryptoError,
    KeyRing,
    KeyStore,
    MasterKeyError,
    MemoryKeyStore,
)

KEY = bytes(range(32))
SUBJECTS = st.text(min_size=1, max_size=12)


class CountingKeyStore(MemoryKeyStore):
    """A memory key store that counts the calls made to it."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()

    def load_key(self, subject: str) -> bytes | None:
        self.calls["load_key"] += 1
        return super().load_key(subject)

    def load_keys(self, subjects: Collection[str]) -> dict[str, bytes]:
        self.calls["load_keys"] += 1
        return super().load_keys(subjects)

    def save_key(self, subject: str, wrapped: bytes) -> bytes:
        self.calls["save_key"] += 1
        return super().save_key(subject, wrapped)


@given(SUBJECTS, st.binary(max_size=200), st.binary(max_size=20))
def test_round_trip(subject: str, plaintext: bytes, aad: bytes) -> None:
    """What is encrypted decrypts to the same bytes, under the same subject and aad."""
    ring = KeyRing(KEY, MemoryKeyStore())
    token = ring.encrypt(subject, plaintext, aad)
    assert token[0] == TOKEN_VERSION and len(token) == len(plaintext) + 37
    assert ring.decrypt(subject, token, aad) == plaintext
    assert ring.encrypt(subject, plaintext, aad) != token  # a fresh nonce each time


def test_tokens_survive_a_restart_with_the_same_master_key() -> None:
    """A new key ring on the same store, with the same master key, reads old tokens."""
    keys = MemoryKeyStore()
    token = KeyRing(KEY, keys).encrypt("c1", b"ann@example.com", b"email")
    assert KeyRing(bytearray(KEY), keys).decrypt("c1", token, b"email") == b"ann@example.com"


def test_a_wrong_master_key_is_refused_at_start() -> None:
    """The key check stored by the first start refuses another master key, naming both
    fingerprints; the right key still starts afterwards."""
    keys = MemoryKeyStore()
    right = KeyRing(KEY, keys)
    right.encrypt("c1", b"x", b"")
    with pytest.raises(MasterKeyError, match="wrong master key") as info:
        KeyRing(os.urandom(32), keys)
    assert right.fingerprint in str(info.value)
    assert isinstance(info.value, ReactorError) and isinstance(info.value, ValueError)
    assert keys.load_key(KEY_CHECK) is not None
    KeyRing(KEY, keys)


@pytest.mark.parametrize(
    ("key", "text"),
    [
        (None, "no master key given"),
        (KEY.hex(), "got a str of 64 characters: decode it first"),
        (KEY[:16], "must be 32 bytes (AES-256), got 16"),
        (42, "got int"),
        (bytes(32), "one byte repeated"),
    ],
)
def test_a_malformed_master_key_is_refused(key: object, text: str) -> None:
    """A missing key, a str, a short key, a non-bytes, a placeholder: each told apart."""
    with pytest.raises(MasterKeyError, match=f".*{text.replace('(', '.').replace(')', '.')}"):
        KeyRing(key, MemoryKeyStore())  # type: ignore[arg-type]


def test_forget_masks_only_that_subject() -> None:
    """After forget, the subject's tokens decrypt to None, in this ring and in a new one;
    other subjects are unaffected; a later encrypt makes a new key."""
    keys = MemoryKeyStore()
    ring = KeyRing(KEY, keys)
    old = ring.encrypt("c1", b"ann", b"email")
    other = ring.encrypt("c2", b"bob", b"email")
    assert ring.forget("c1") is True
    assert ring.forget("c1") is False
    assert ring.forget("never-seen") is False
    assert ring.decrypt("c1", old, b"email") is None
    assert ring.decrypt("c2", other, b"email") == b"bob"
    new = ring.encrypt("c1", b"ann again", b"email")
    for reader in (ring, KeyRing(KEY, keys)):
        assert reader.decrypt("c1", old, b"email") is None
        assert reader.decrypt("c1", new, b"email") == b"ann again"
        assert reader.decrypt("c2", other, b"email") == b"bob"


def test_a_subject_without_a_key_reads_as_forgotten() -> None:
    """A token of a subject the store has no key for decrypts to None."""
    ring = KeyRing(KEY, MemoryKeyStore())
    token = KeyRing(KEY, MemoryKeyStore()).encrypt("c1", b"ann", b"")
    assert ring.decrypt("c1", token, b"") is None


@given(st.data())
def test_a_tampered_token_is_refused(data: st.DataObject) -> None:
    """Changing any byte of a token but its key id, or cutting it, raises `CryptoError`
    naming the subject (a changed key id reads as a destroyed key: None)."""
    ring = KeyRing(KEY, MemoryKeyStore())
    token = bytearray(ring.encrypt("c1", b"ann@example.com", b"email"))
    i = data.draw(st.integers(0, len(token) - 1))
    token[i] ^= data.draw(st.integers(1, 255))
    if 1 <= i <= 8:
        assert ring.decrypt("c1", bytes(token), b"email") is None
        return
    with pytest.raises(CryptoError, match="subject 'c1'") as info:
        ring.decrypt("c1", bytes(token), b"email")
    assert info.value.subject == "c1"
    with pytest.raises(CryptoError, match="at least 37 bytes"):
        ring.decrypt("c1", bytes(token[:30]), b"email")


def test_a_token_moved_to_another_field_or_event_is_refused() -> None:
    """A token opened with other associated data (another field, another event) fails."""
    ring = KeyRing(KEY, MemoryKeyStore())
    token = ring.encrypt("c1", b"ann@example.com", b"shop.Registered/email")
    for aad in (b"shop.Registered/phone", b"shop.Moved/email", b""):
        with pytest.raises(CryptoError, match="copied from another field"):
            ring.decrypt("c1", token, aad)
    with pytest.raises(CryptoError, match="unknown token version 2"):
        ring.decrypt("c1", b"\x02" + token[1:], b"shop.Registered/email")


def test_altered_or_copied_data_keys_are_refused() -> None:
    """A data key row altered, or copied to another subject, does not open."""
    keys = MemoryKeyStore()
    ring = KeyRing(KEY, keys)
    token = ring.encrypt("c1", b"ann", b"")
    ring.encrypt("c2", b"bob", b"")
    wrapped = keys.load_key("c1") or b""
    keys.delete_key("c2")
    keys.save_key("c2", wrapped)
    with pytest.raises(CryptoError, match="copied from another subject"):
        KeyRing(KEY, keys).encrypt("c2", b"x", b"")
    keys.delete_key("c1")
    keys.save_key("c1", wrapped[:-1])
    with pytest.raises(CryptoError, match="malformed"):
        KeyRing(KEY, keys).decrypt("c1", token, b"")


@pytest.mark.parametrize("subject", ["", None, 3])
def test_a_subject_id_must_be_a_non_empty_str(subject: object) -> None:
    """The empty subject is reserved for the key check; others are not text."""
    ring = KeyRing(KEY, MemoryKeyStore())
    for call in (
        lambda: ring.encrypt(subject, b"x", b""),  # type: ignore[arg-type]
        lambda: ring.decrypt(subject, bytes(40), b""),  # type: ignore[arg-type]
        lambda: ring.forget(subject),  # type: ignore[arg-type]
        lambda: ring.preload([subject]),  # type: ignore[list-item]
    ):
        with pytest.raises(CryptoError, match="non-empty str"):
            call()


def test_the_key_cache_is_bounded_and_spares_the_store() -> None:
    """A hot subject's key is loaded once; the cache never holds more than its size and
    evicted keys are loaded again when needed."""
    keys = CountingKeyStore()
    ring = KeyRing(KEY, keys, cache_size=3)
    loads = keys.calls["load_key"]
    tokens = [ring.encrypt("hot", b"x", b"") for _ in range(100)]
    assert keys.calls["load_key"] == loads + 1 and keys.calls["save_key"] == 2  # check + key
    assert all(ring.decrypt("hot", t, b"") == b"x" for t in tokens)
    assert keys.calls["load_key"] == loads + 1
    cold = {f"s{i}": ring.encrypt(f"s{i}", b"%d" % i, b"") for i in range(10)}
    assert ring.cached == 3
    loads = keys.calls["load_key"]
    assert [ring.decrypt(s, t, b"") for s, t in cold.items()] == [b"%d" % i for i in range(10)]
    assert keys.calls["load_key"] == loads + 10  # each evicted key loaded again
    assert ring.cached == 3
    ring.evict("s9")
    assert ring.cached == 2
    with pytest.raises(ValueError, match="cache_size"):
        KeyRing(KEY, keys, cache_size=0)


def test_preload_loads_many_keys_in_one_call() -> None:
    """`preload` fetches the uncached keys in one store call; decrypting them then asks
    the store nothing."""
    keys = CountingKeyStore()
    tokens = {f"s{i}": KeyRing(KEY, keys).encrypt(f"s{i}", b"v", b"") for i in range(20)}
    ring = KeyRing(KEY, keys)
    before = keys.calls["load_key"]
    ring.preload([*tokens, "unknown"])
    assert keys.calls["load_keys"] == 1 and ring.cached == 20
    assert all(ring.decrypt(s, t, b"") == b"v" for s, t in tokens.items())
    assert keys.calls["load_key"] == before


def test_many_threads_encrypting_for_shared_subjects_agree_on_one_key_each() -> None:
    """Threads racing to make the first key of the same subjects (with a small cache
    churning) all end up using one key per subject: every token opens everywhere."""
    keys = MemoryKeyStore()
    ring = KeyRing(KEY, keys, cache_size=8)
    subjects = [f"s{i}" for i in range(40)]
    tokens: list[tuple[str, bytes, bytes]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def work(n: int) -> None:
        try:
            start.wait(timeout=10)
            for i, subject in enumerate(subjects * 3):
                plain = b"%d-%d" % (n, i)
                token = ring.encrypt(subject, plain, b"f")
                assert ring.decrypt(subject, token, b"f") == plain
                tokens.append((subject, plain, token))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    fresh = KeyRing(KEY, keys)
    assert all(fresh.decrypt(s, t, b"f") == p for s, p, t in tokens)
    assert len(keys.load_keys([*subjects, KEY_CHECK])) == len(subjects) + 1


def test_no_thread_reads_a_forgotten_subject_after_forget_returns() -> None:
    """Readers racing with `forget` (and refilling the cache meanwhile) read None for the
    forgotten subject's tokens once forget has returned, and the others' as before."""
    ring = KeyRing(KEY, MemoryKeyStore(), cache_size=4)
    tokens = {f"s{i}": ring.encrypt(f"s{i}", b"v", b"") for i in range(8)}
    forgotten = threading.Event()
    stop = threading.Event()
    late: list[tuple[str, bytes | None]] = []

    def read() -> None:
        while not stop.is_set():
            for subject, token in tokens.items():
                after = forgotten.is_set()
                value = ring.decrypt(subject, token, b"")
                if after:
                    late.append((subject, value))

    threads = [threading.Thread(target=read) for _ in range(4)]
    for t in threads:
        t.start()
    for subject in ("s0", "s5"):
        ring.forget(subject)
    forgotten.set()
    while len(late) < 400 and all(t.is_alive() for t in threads):
        forgotten.wait(0.01)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert len(late) >= 400
    for subject, value in late:
        assert value == (None if subject in ("s0", "s5") else b"v"), subject


class PausingKeyStore(MemoryKeyStore):
    """A memory key store whose `load_key` for one subject, in one thread, reads the key,
    then waits until told to return it: a read caught in the middle of a forget."""

    def __init__(self, subject: str) -> None:
        super().__init__()
        self.subject, self.reader = subject, None
        self.loaded, self.go_on = threading.Event(), threading.Event()

    def load_key(self, subject: str) -> bytes | None:
        key = super().load_key(subject)
        if subject == self.subject and threading.current_thread() is self.reader:
            self.loaded.set()
            self.go_on.wait(timeout=30)
        return key


def test_a_key_read_before_a_forget_is_not_cached_after_it() -> None:
    """A reader that loaded a subject's key just before `forget` deleted it may use it for
    that one call, but never leaves it in the cache: later reads see the subject forgotten."""
    keys = PausingKeyStore("s0")
    ring = KeyRing(KEY, keys)
    token = ring.encrypt("s0", b"v", b"")
    ring.evict("s0")
    results: list[bytes | None] = []
    reader = threading.Thread(target=lambda: results.append(ring.decrypt("s0", token, b"")))
    keys.reader = reader  # type: ignore[assignment]
    reader.start()
    assert keys.loaded.wait(timeout=30)
    assert ring.forget("s0")
    ring.evict("s0")  # as a busy cache may, so only the forget count stops the stale key
    keys.go_on.set()
    reader.join(timeout=30)
    assert results == [b"v"]  # it began before the forget
    assert ring.decrypt("s0", token, b"") is None


def test_memory_key_store_saves_only_the_first_key() -> None:
    """`save_key` keeps an existing key and returns it (the KeyStore contract)."""
    keys = MemoryKeyStore()
    assert isinstance(keys, KeyStore)
    assert keys.save_key("s", b"one") == b"one"
    assert keys.save_key("s", b"two") == b"one"
    assert keys.load_keys(["s", "t"]) == {"s": b"one"}
    assert keys.delete_key("s") and keys.load_key("s") is None


def test_repr_shows_the_fingerprint_not_the_key() -> None:
    """Printing a key ring never shows the master key."""
    ring = KeyRing(KEY, MemoryKeyStore())
    assert ring.fingerprint in repr(ring)
    assert KEY.hex() not in repr(ring) and repr(KEY) not in repr(ring)


def test_importing_without_cryptography_says_which_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without `cryptography`, importing the module raises an ImportError that is a
    ReactorError and names the extra to install."""
    for name in [m for m in sys.modules if m == "cryptography" or m.startswith("cryptography.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "cryptography", None)
    monkeypatch.delitem(sys.modules, "reactor.security.crypto")
    with pytest.raises(ImportError, match=r"pip install 'reactor-actors\[crypto\]'") as info:
        importlib.import_module("reactor.security.crypto")
    assert isinstance(info.value, ReactorError)
