"""base45 as RB1 uses it (RFC 9285): the RFC examples, and agreement with an independent implementation."""

from __future__ import annotations

import re

import base45  # type: ignore[import-untyped]  # base45 0.4.4 ships no py.typed; used as an independent codec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.tickets import BASE45_ALPHABET, base45_decode, base45_encode


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (b"AB", "BB8"),
        (b"Hello!!", "%69 VD92EX0"),
        (b"base-45", "UJCLQE7W581"),
        (b"ietf!", "QED8WEX0"),
        (b"", ""),
    ],
)
def test_base45_matches_rfc_9285_examples(data: bytes, text: str) -> None:
    assert base45_encode(data) == text
    assert base45_decode(text) == data


@given(st.binary(max_size=300))
def test_base45_agrees_with_an_independent_implementation(data: bytes) -> None:
    text = base45_encode(data)
    assert text == base45.b45encode(data).decode()
    assert base45_decode(text) == data


def refusal(text: str) -> str | None:
    """Why `base45_decode` refuses `text`, or None if it decodes it."""
    try:
        base45_decode(text)
    except ValueError as err:
        return str(err)
    return None


BASE45_REASON = (
    r"^(invalid character U\+[0-9A-F]{4,} at position \d+|length \d+ leaves one dangling character|"
)
BASE45_REASON += r"group at position \d+ is \d+, above 65535|final pair at position \d+ is \d+, above 255)$"


@settings(max_examples=1000)
@given(
    st.one_of(
        # Random text in the alphabet: about one 3-character group in four is above 65535.
        st.text(alphabet=BASE45_ALPHABET, max_size=60),
        st.text(alphabet=BASE45_ALPHABET + "a?\n\x00\u00e9\ud800", max_size=60),
        st.binary(max_size=60).map(base45_encode),
    )
)
def test_base45_decodes_and_refuses_what_an_independent_implementation_does(text: str) -> None:
    try:
        expected: bytes | None = base45.b45decode(text)
    except ValueError:
        expected = None
    if expected is None or text.endswith("\n"):
        # base45 0.4.4 strips trailing newlines; RB1 refuses them like any character outside the alphabet.
        reason = refusal(text)
        assert reason is not None
        assert re.match(BASE45_REASON, reason), reason
    else:
        assert base45_decode(text) == expected


def test_base45_every_group_and_every_final_pair() -> None:
    every_pair = b"".join(n.to_bytes(2, "big") for n in range(0x10000))
    text = base45_encode(every_pair)
    assert text == base45.b45encode(every_pair).decode()
    assert base45_decode(text) == every_pair
    # Every final pair, and every group above 65535 (the valid ones were all decoded above), after a group.
    alphabet = list(enumerate(BASE45_ALPHABET))
    for e, third in alphabet:
        for d, second in alphabet:
            pair_value = d + 45 * e
            if pair_value <= 0xFF:
                assert base45_decode("000" + second + third) == bytes((0, 0, pair_value))
            else:
                reason = f"final pair at position 3 is {pair_value}, above 255"
                assert refusal("000" + second + third) == reason
            for c, first in alphabet:
                value = c + 45 * d + 2025 * e
                if value > 0xFFFF:
                    group = first + second + third
                    assert refusal("000" + group) == f"group at position 3 is {value}, above 65535"
