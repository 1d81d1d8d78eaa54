from __future__ import annotations

import pytest
from starlette.datastructures import Headers as StarletteHeaders
from starlette.datastructures import QueryParams
from websockets.datastructures import Headers

from voxwire.auth import MAX_TOKEN_BYTES, offered_credentials


def test_every_place_a_credential_comes_from() -> None:
    got = offered_credentials(
        {"Authorization": "Bearer tok-h"},
        {"api_key": "tok-q", "token": "tok-t", "other": "ignored"},
        ["realtime", "openai-insecure-api-key.tok-s", "bearer.authorization.amigo.ai.eyJ.a.b"],
    )
    assert got == ["tok-h", "tok-q", "tok-t", "tok-s", "eyJ.a.b"]


def test_header_names_case_blind_and_bearer_case_blind() -> None:
    assert offered_credentials({"authorization": "bearer abc"}, {}, []) == ["abc"]
    assert offered_credentials([("AUTHORIZATION", "BEARER abc")], [], []) == ["abc"]
    assert offered_credentials({"authorization": "Basic abc"}, {}, []) == []


def test_every_repeated_header_and_query_value() -> None:
    h = Headers()
    h["Authorization"] = "Bearer one"
    h["Authorization"] = "Bearer two"
    assert offered_credentials(h, [("token", "three"), ("token", "four")], []) == [
        "one",
        "two",
        "three",
        "four",
    ]
    sh = StarletteHeaders(raw=[(b"authorization", b"Bearer a"), (b"authorization", b"Bearer b")])
    assert offered_credentials(sh, QueryParams("token=c&token=d"), []) == ["a", "b", "c", "d"]


def test_duplicates_once() -> None:
    got = offered_credentials(
        {"authorization": "Bearer same"}, {"api_key": "same"}, ["openai-insecure-api-key.same"]
    )
    assert got == ["same"]


def test_at_most_max_keys() -> None:
    protos = [f"openai-insecure-api-key.k{i}" for i in range(100)]
    assert offered_credentials({}, {}, protos) == [f"k{i}" for i in range(8)]
    assert offered_credentials({}, {}, protos, max_keys=3) == ["k0", "k1", "k2"]
    assert offered_credentials({"authorization": "Bearer h"}, {}, protos, max_keys=1) == ["h"]
    pairs = [("authorization", f"Bearer h{i}") for i in range(10_000)]
    assert len(offered_credentials(pairs, {}, protos)) == 8


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "é",
        "tok\u200b",
        "tok\x00",
        "tok\x7f",
        "tok\r\nX-Evil: 1",
        "a b",
        "\ud800",
        "k" * (MAX_TOKEN_BYTES + 1),
    ],
)
def test_malformed_candidates_dropped(bad: str) -> None:
    got = offered_credentials(
        {"authorization": "Bearer " + bad},
        {"token": bad, "api_key": "good"},
        ["openai-insecure-api-key." + bad],
    )
    assert got == ["good"]


def test_largest_accepted() -> None:
    big = "k" * MAX_TOKEN_BYTES
    assert offered_credentials({}, {"token": big}, []) == [big]


def test_other_names_and_prefixes() -> None:
    got = offered_credentials(
        {},
        {"token": "t", "access_token": "a"},
        ["x-key.p"],
        query_names=("access_token",),
        subprotocol_prefixes=("x-key.",),
    )
    assert got == ["a", "p"]


def test_non_strings_ignored() -> None:
    assert offered_credentials([("authorization", None)], [("token", 5)], [None, b"x"]) == []  # type: ignore[list-item]
