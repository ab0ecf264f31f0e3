"""Holder binding: a ticket that names its holder's key passes only as a fresh live code from that holder."""

from __future__ import annotations

import datetime as dt

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from models.tickets import (
    LIVE_PREFIX,
    PREFIX,
    TicketFormatError,
    Verdict,
    base45_encode,
    decode_ticket,
    encode_ticket,
    holder_message,
    live_code,
    split_code,
)
from tests.unit.ticket_samples import KEY, NOW, OTHER_KEY, TOKEN, assert_verdict, claims, public_raw, verify

WALLET = Ed25519PrivateKey.from_private_bytes(bytes(range(64, 96)))
BOUND = encode_ticket(claims(holder_key=public_raw(WALLET)), KEY)
SECOND = dt.timedelta(seconds=1)


def test_a_fresh_live_code_of_a_bound_ticket_is_valid() -> None:
    code = live_code(BOUND, WALLET, NOW)
    assert code.startswith(LIVE_PREFIX)
    assert verify(code).ok
    assert verify(code, now=NOW + 30 * SECOND).ok  # the window's last second
    assert verify(code, now=NOW - 30 * SECOND).ok  # the phone's clock a little ahead of the robot's


def test_the_holder_key_claim_round_trips_and_is_claim_minus_10() -> None:
    decoded = decode_ticket(BOUND)
    assert decoded.claims.holder_key == public_raw(WALLET)
    claims_map = cbor2.loads(decoded.payload)
    assert claims_map[-10] == public_raw(WALLET)
    assert -10 not in cbor2.loads(decode_ticket(TOKEN).payload)


def test_the_bare_token_of_a_bound_ticket_is_refused() -> None:
    assert_verdict(verify(BOUND), Verdict.HOLDER_PROOF_MISSING, "live code")


@pytest.mark.parametrize("offset", [31, -31, 3600])
def test_a_live_code_outside_the_window_is_stale(offset: int) -> None:
    code = live_code(BOUND, WALLET, NOW)
    assert_verdict(verify(code, now=NOW + offset * SECOND), Verdict.HOLDER_PROOF_STALE, f"{abs(offset)} s")


def test_the_window_is_the_verifiers_choice() -> None:
    code = live_code(BOUND, WALLET, NOW)
    window = dt.timedelta(minutes=2)
    assert verify(code, now=NOW + 119 * SECOND, holder_window=window).ok
    assert_verdict(verify(code, now=NOW + 121 * SECOND, holder_window=window), Verdict.HOLDER_PROOF_STALE)


def test_a_proof_by_another_key_is_refused() -> None:
    code = live_code(BOUND, OTHER_KEY, NOW)
    assert_verdict(verify(code), Verdict.BAD_HOLDER_PROOF, "holder key")


def test_a_proof_cannot_move_to_another_ticket_of_the_same_holder() -> None:
    other = encode_ticket(claims(holder_key=public_raw(WALLET), place_number=37), KEY)
    proof = live_code(other, WALLET, NOW)[-102:]
    moved = LIVE_PREFIX + BOUND[len(PREFIX) :] + proof
    assert_verdict(verify(moved), Verdict.BAD_HOLDER_PROOF)
    assert verify(LIVE_PREFIX + BOUND[len(PREFIX) :] + live_code(BOUND, WALLET, NOW)[-102:]).ok


def test_a_proof_cannot_be_redated() -> None:
    code = live_code(BOUND, WALLET, NOW)
    _, proof = split_code(code)
    assert proof is not None
    later = (proof.at_seconds + 60).to_bytes(4, "big") + proof.signature
    redated = code[:-102] + base45_encode(later)
    assert_verdict(verify(redated, now=NOW + 60 * SECOND), Verdict.BAD_HOLDER_PROOF)


def test_a_proof_on_an_unbound_ticket_is_refused() -> None:
    assert_verdict(verify(live_code(TOKEN, WALLET, NOW)), Verdict.BAD_HOLDER_PROOF, "names no holder key")


@pytest.mark.parametrize(
    ("code", "verdict"),
    [
        (LIVE_PREFIX, Verdict.BAD_HOLDER_PROOF),
        (LIVE_PREFIX + "0" * 102, Verdict.BAD_HOLDER_PROOF),
        (LIVE_PREFIX + "ABC" + "a" * 102, Verdict.BAD_BASE45),  # lowercase is not base45
        (LIVE_PREFIX + "ABC" + "::: " * 34, Verdict.BAD_BASE45),  # a group above 65535
        (LIVE_PREFIX + "A" * 5000, Verdict.TOO_LARGE),
    ],
)
def test_unreadable_live_codes_are_named(code: str, verdict: Verdict) -> None:
    with pytest.raises(TicketFormatError) as caught:
        split_code(code)
    assert caught.value.verdict is verdict
    assert verify(code).verdict is verdict


def test_the_signed_message_is_the_context_the_ticket_signature_and_the_time() -> None:
    signature = decode_ticket(BOUND).signature
    message = holder_message(signature, 1_800_000_000)
    assert message == b"RB1 holder proof\x00" + signature + (1_800_000_000).to_bytes(4, "big")
    _, proof = split_code(live_code(BOUND, WALLET, dt.datetime.fromtimestamp(1_800_000_000, dt.UTC)))
    assert proof is not None
    WALLET.public_key().verify(proof.signature, message)


def test_a_bare_token_passes_through_split_code_unchanged() -> None:
    assert split_code(TOKEN) == (TOKEN, None)


def test_a_holder_proven_by_other_means_stands_for_the_live_proof_and_every_other_check_runs() -> None:
    # The robot recognised the passenger's face and took the bare token from its own copy.
    assert verify(BOUND, holder_proven=True).ok
    assert verify(TOKEN, holder_proven=True).ok  # an unbound ticket is as it was
    assert_verdict(verify(BOUND, holder_proven=True, is_used=lambda _: True), Verdict.ALREADY_USED)
    assert_verdict(verify(BOUND, holder_proven=True, now=NOW + dt.timedelta(days=400)), Verdict.EXPIRED)
    # A proof that is given is still checked: a stale one stays stale.
    stale = live_code(BOUND, WALLET, NOW - 60 * SECOND)
    assert_verdict(verify(stale, holder_proven=True), Verdict.HOLDER_PROOF_STALE)
