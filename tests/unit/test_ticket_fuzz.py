"""RB1 tickets under fuzzing and property tests: mutated and arbitrary input is never accepted, and random
claims round-trip through every layer, with cbor2 as the reference encoding.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from models.tickets import (
    BASE45_ALPHABET,
    CLAIMS,
    PREFIX,
    TicketClaims,
    TicketFormatError,
    TrustedKey,
    Verdict,
    base45_encode,
    claims_to_cbor,
    decode_envelope,
    decode_ticket,
    encode_ticket,
    sig_structure,
    verify_ticket,
)
from tests.unit.ticket_samples import (
    KEY,
    KID,
    LAST_SECOND,
    TOKEN,
    claims,
    public_raw,
    seal,
    sign1,
    utc,
    verify,
)

# --- fuzzing ----------------------------------------------------------------------------------------

COSE = decode_envelope(TOKEN).cose
FUZZ = settings(max_examples=2000, derandomize=True, database=None, deadline=None)
MUTATION_CHARS = st.sampled_from(BASE45_ALPHABET + "abz\n\t\x00é\u200b")


Mutation = tuple[str, int, Any]


def mutations(element: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Mutation]]:
    """1-3 flips, insertions, deletions or truncations at random positions."""
    operation = st.sampled_from(["flip", "insert", "delete", "truncate"])
    return st.lists(st.tuples(operation, st.integers(0, 400), element), min_size=1, max_size=3)


def mutate(original: Any, changes: list[Mutation]) -> Any:
    value = original
    for operation, position, element in changes:
        index = position % max(len(value), 1)
        if operation == "flip":
            value = value[:index] + element + value[index + 1 :]
        elif operation == "insert":
            value = value[:index] + element + value[index:]
        elif operation == "delete":
            value = value[:index] + value[index + 1 :]
        else:
            value = value[:index]
    return value


def inflated(token: str) -> bytes | None:
    try:
        return decode_envelope(token).cose
    except TicketFormatError:
        return None


@FUZZ
@given(mutations(MUTATION_CHARS))
def test_mutated_token_text_is_never_accepted(changes: list[Mutation]) -> None:
    # The prefix has its own tests; spending the budget behind it reaches base45 and zlib.
    mutated = PREFIX + mutate(TOKEN[len(PREFIX) :], changes)
    assume(mutated != TOKEN)
    result = verify(mutated)
    if result.ok:
        # zlib ignores the padding bits of its last byte, so a flip there inflates to the very same signed
        # COSE_Sign1: the same ticket, not a forgery. Anything else must be refused.
        assert inflated(mutated) == COSE


@FUZZ
@given(mutations(st.binary(min_size=1, max_size=1)))
def test_mutated_cose_is_never_accepted(changes: list[Mutation]) -> None:
    mutated: bytes = mutate(COSE, changes)
    assume(mutated != COSE)
    result = verify(seal(mutated))
    assert not result.ok, result


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=400),
        st.text(alphabet=BASE45_ALPHABET, max_size=400).map(lambda text: PREFIX + text),
        st.binary(max_size=400).map(lambda raw: PREFIX + base45_encode(raw)),
        st.binary(max_size=400).map(seal),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.binary(max_size=20) | st.text(max_size=20),
            lambda children: st.lists(children, max_size=5) | st.dictionaries(st.integers(-10, 10), children),
            max_leaves=20,
        ).map(lambda item: seal(cbor2.dumps(cbor2.CBORTag(18, item)))),
    )
)
def test_arbitrary_input_never_raises(token: str) -> None:
    result = verify(token)
    assert not result.ok
    assert result.reason


# --- property: random claims round-trip --------------------------------------------------------------------

SECONDS = st.integers(0, 2**32 - 1).map(lambda s: utc(1970, 1, 1) + dt.timedelta(seconds=s))
INT32 = st.integers(-(2**31), 2**31 - 1)


@st.composite
def random_claims(draw: Callable[[st.SearchStrategy[Any]], Any]) -> TicketClaims:
    not_before = draw(SECONDS.filter(lambda moment: moment < LAST_SECOND))
    expires_at = not_before + dt.timedelta(
        seconds=draw(st.integers(1, int((LAST_SECOND - not_before).total_seconds())))
    )
    return TicketClaims(
        ticket_id=draw(st.uuids()),
        user_id=draw(st.uuids()),
        train_number=draw(INT32),
        wagon_number=draw(INT32),
        place_number=draw(INT32),
        date=draw(SECONDS),
        station_id=draw(st.text(max_size=60)),
        destination_id=draw(st.text(max_size=60)),
        start_date=draw(SECONDS),
        code=draw(st.text(max_size=128)),
        holder_key=draw(st.none() | st.binary(min_size=32, max_size=32)),
        issued_at=draw(SECONDS),
        not_before=not_before,
        expires_at=expires_at,
    )


def claims_by_cbor2(ticket: TicketClaims) -> bytes:
    """The claims map built from CLAIMS and written by cbor2: what the hand-written encoder must produce."""
    encoded: dict[int, object] = {}
    for spec in CLAIMS:
        value = getattr(ticket, spec.field)
        if value is None and spec.optional:
            continue
        if spec.kind == "uuid":
            value = value.bytes
        elif spec.kind == "time":
            value = (value - utc(1970, 1, 1)) // dt.timedelta(seconds=1)
        encoded[spec.key] = value
    return cbor2.dumps(encoded, canonical=True)


@pytest.mark.parametrize(
    ("number", "code"),
    [
        (0, ""),
        (23, "x" * 23),
        (24, "x" * 24),
        (255, "é" * 127),  # 254 bytes of UTF-8
        (256, "é" * 128),  # 256 bytes
        (65535, "\U00010000" * 128),  # 512 bytes
        (65536, "x"),
        (2**31 - 1, "x"),
        (-1, "x"),
        (-24, "x"),
        (-25, "x"),
        (-256, "x"),
        (-257, "x"),
        (-65536, "x"),
        (-65537, "x"),
        (-(2**31), "x"),
    ],
)
def test_claims_cbor_agrees_with_cbor2_at_every_length_boundary(number: int, code: str) -> None:
    ticket = claims(train_number=number, date=utc(1970, 1, 1) + dt.timedelta(seconds=abs(number)), code=code)
    assert claims_to_cbor(ticket) == claims_by_cbor2(ticket)
    assert decode_ticket(encode_ticket(ticket, KEY)).claims == ticket


@pytest.mark.parametrize("size", [0, 23, 24, 255, 256, 1500, 65535, 65536])
def test_cose_cbor_agrees_with_cbor2_at_every_length_boundary(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    protected = cbor2.dumps({1: -8, 4: KID})
    assert sig_structure(protected, payload) == cbor2.dumps(["Signature1", protected, b"", payload])
    if size <= 1500:
        # The verifier checks a COSE_Sign1 against its own deterministic encoding: cbor2's must pass.
        assert decode_envelope(seal(sign1(payload))).payload == payload


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_claims())
def test_random_claims_round_trip(ticket: TicketClaims) -> None:
    token = encode_ticket(ticket, KEY)
    decoded = decode_ticket(token)
    assert decoded.claims == ticket
    # The CBOR is written by hand for speed; cbor2's deterministic encoding is the reference for every layer.
    assert decoded.payload == claims_to_cbor(ticket) == claims_by_cbor2(ticket)
    assert decoded.protected == cbor2.dumps({1: -8, 4: KID}, canonical=True)
    message = [decoded.protected, {}, decoded.payload, decoded.signature]
    assert decoded.cose == cbor2.dumps(cbor2.CBORTag(18, message))
    assert decoded.to_be_signed() == cbor2.dumps(["Signature1", decoded.protected, b"", decoded.payload])
    trust = [TrustedKey.from_public_key(public_raw(KEY), valid_from=ticket.issued_at)]
    result = verify_ticket(token, trust=trust, now=ticket.not_before, clock_tolerance=dt.timedelta(0))
    assert result.claims == ticket
    if ticket.holder_key is not None:  # the bare token of a bound ticket (live codes: test_ticket_holder.py)
        assert result.verdict is Verdict.HOLDER_PROOF_MISSING
        return
    # Only the iat-in-the-future rule can refuse a ticket checked at its own not_before.
    assert result.ok or (result.verdict is Verdict.NOT_YET_VALID and ticket.issued_at > ticket.not_before)
