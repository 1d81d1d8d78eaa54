from __future__ import annotations

import pytest

from voxwire.auth import hash_password, password_needs_rehash, verify_password
from voxwire.errors import InvalidInputError

FAST = {"n": 1024, "r": 8, "p": 1}  # cheap parameters where the defaults are not the point


@pytest.mark.slow
def test_round_trip_with_the_defaults() -> None:
    h = hash_password("correct horse battery staple")
    assert h.startswith("scrypt$32768$8$1$")
    assert verify_password("correct horse battery staple", h)
    assert not verify_password("correct horse battery stapler", h)
    assert not password_needs_rehash(h)


def test_wrong_password_and_case() -> None:
    h = hash_password("Secret-1", **FAST)
    assert verify_password("Secret-1", h)
    assert not verify_password("secret-1", h)
    assert not verify_password("Secret-1 ", h)


def test_salted_and_self_describing() -> None:
    a, b = hash_password("same", **FAST), hash_password("same", **FAST)
    assert a != b  # different salts
    alg, n, r, p, salt, digest = a.split("$")
    assert (alg, n, r, p) == ("scrypt", "1024", "8", "1")
    assert (len(salt), len(digest)) == (22, 43)  # 16 and 32 bytes, base64 without padding
    assert "same" not in a
    assert verify_password("same", a) and verify_password("same", b)
    assert password_needs_rehash(a)  # not today's defaults


def test_unicode_passwords() -> None:
    h = hash_password("pässwörd ✓", **FAST)
    assert verify_password("pässwörd ✓", h)
    assert not verify_password("passwort ✓", h)


@pytest.mark.parametrize("bad", ["", "x" * 4097, "a\ud800b"])
def test_bad_passwords_refused_when_hashing(bad: str) -> None:
    with pytest.raises(InvalidInputError):
        hash_password(bad, **FAST)


def test_bad_passwords_never_raise_when_verifying() -> None:
    h = hash_password("fine", **FAST)
    for bad in ["", "x" * 5000, "a\ud800b"]:
        assert verify_password(bad, h) is False


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "plain",
        "bcrypt$10$8$1$AAAA$AAAA",
        "scrypt$1000$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "scrypt$1073741824$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "scrypt$1024$8$1$!!!!$AAAA",
        "scrypt$1024$8$1$AAAAAAAAAAAAAAAAAAAAAA",
    ],
)
def test_malformed_hashes_verify_nothing(stored: str) -> None:
    assert verify_password("anything", stored) is False
    assert password_needs_rehash(stored)


def test_bad_parameters_refused() -> None:
    for kw in ({"n": 1000}, {"n": 1 << 21}, {"r": 0}, {"p": 17}):
        with pytest.raises(InvalidInputError):
            hash_password("pw", **{**FAST, **kw})
