"""RB1 ticket verification: trust list and signature, key validity at issue, the validity window, the
assignment, revoked and used tickets, check order, and key rotation.

Every token is a real one, signed with a real key; only the check under test is made to fail.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import cbor2
import pytest

from models.tickets import Assignment, TrustedKey, Verdict, decode_envelope, encode_ticket, key_id
from tests.unit.ticket_samples import (
    KEY,
    KID,
    NOW,
    OTHER_KEY,
    PAYLOAD,
    TICKET_ID,
    TOKEN,
    TYPICAL,
    assert_verdict,
    claims,
    claims_map,
    public_raw,
    seal,
    sign1,
    utc,
    verify,
)

# --- one real token per verdict after the format, in check order ------------------------------------------


def test_unknown_key() -> None:
    token = encode_ticket(claims(), OTHER_KEY)
    result = verify(token)
    other_kid = key_id(public_raw(OTHER_KEY))
    assert_verdict(result, Verdict.UNKNOWN_KEY, f"kid {other_kid.hex()} not in trust list")
    assert result.kid == other_kid
    assert result.claims is None


def test_tampered_payload_recompressed_has_a_bad_signature() -> None:
    envelope = decode_envelope(TOKEN)
    forged = cbor2.loads(envelope.payload)
    forged[-2] = 743  # another train
    cose = cbor2.dumps(cbor2.CBORTag(18, [envelope.protected, {}, cbor2.dumps(forged), envelope.signature]))
    result = verify(seal(cose))
    assert_verdict(result, Verdict.BAD_SIGNATURE, KID.hex())
    assert result.claims is None  # unauthenticated claims are never handed out


def test_kid_of_a_trusted_key_on_a_signature_by_another_key_is_a_bad_signature() -> None:
    token = seal(sign1(PAYLOAD, protected={1: -8, 4: KID}, key=OTHER_KEY))
    assert_verdict(verify(token), Verdict.BAD_SIGNATURE)


def test_tampered_protected_header_has_a_bad_signature() -> None:
    envelope = decode_envelope(TOKEN)
    protected = cbor2.dumps({1: -8, 4: KID, 99: "added"})
    cose = cbor2.dumps(cbor2.CBORTag(18, [protected, {}, envelope.payload, envelope.signature]))
    assert_verdict(verify(seal(cose)), Verdict.BAD_SIGNATURE)


def test_key_retired_before_issue_is_not_valid_at_issue() -> None:
    retired = TrustedKey.from_public_key(
        public_raw(KEY), valid_from=utc(2026, 1, 1), valid_to=utc(2026, 11, 20, 9, 59, 59)
    )
    result = verify(TOKEN, trust=[retired])
    assert_verdict(result, Verdict.KEY_NOT_VALID_AT_ISSUE, "issued at 2026-11-20T10:00:00+00:00", KID.hex())
    assert result.claims == claims()


def test_key_not_yet_trusted_at_issue_is_not_valid_at_issue() -> None:
    future = TrustedKey.from_public_key(public_raw(KEY), valid_from=utc(2026, 11, 20, 10, 0, 1))
    assert_verdict(verify(TOKEN, trust=[future]), Verdict.KEY_NOT_VALID_AT_ISSUE)


def test_key_validity_bounds_are_inclusive_at_whole_seconds() -> None:
    iat = TYPICAL["issued_at"]
    exact = TrustedKey.from_public_key(public_raw(KEY), valid_from=iat, valid_to=iat)
    assert verify(TOKEN, trust=[exact]).ok
    # `iat` has no fractions: a key created during the second of issue covers the tickets it signed then.
    same_second = TrustedKey.from_public_key(
        public_raw(KEY), valid_from=iat + dt.timedelta(microseconds=500_000)
    )
    assert verify(TOKEN, trust=[same_second]).ok


def test_not_before_beyond_tolerance_is_not_yet_valid() -> None:
    token = encode_ticket(claims(not_before=NOW + dt.timedelta(minutes=6)), KEY)
    result = verify(token)
    assert_verdict(result, Verdict.NOT_YET_VALID, "not valid before 2026-11-27T20:06:00+00:00")
    assert result.claims is not None


def test_not_before_within_tolerance_is_valid() -> None:
    token = encode_ticket(claims(not_before=NOW + dt.timedelta(minutes=4)), KEY)
    assert verify(token).ok
    assert verify(token, clock_tolerance=dt.timedelta(minutes=3)).verdict is Verdict.NOT_YET_VALID


def test_issued_in_the_future_beyond_tolerance_is_not_yet_valid() -> None:
    issued = NOW + dt.timedelta(hours=1)
    token = encode_ticket(claims(issued_at=issued, not_before=NOW - dt.timedelta(days=1)), KEY)
    assert_verdict(verify(token), Verdict.NOT_YET_VALID, "issued in the future")


def test_expired_beyond_tolerance() -> None:
    token = encode_ticket(claims(expires_at=NOW - dt.timedelta(minutes=6)), KEY)
    assert_verdict(verify(token), Verdict.EXPIRED, "expired at 2026-11-27T19:54:00+00:00")


def test_expired_within_tolerance_is_still_valid() -> None:
    token = encode_ticket(claims(expires_at=NOW - dt.timedelta(minutes=4)), KEY)
    assert verify(token).ok
    # RFC 8392: not accepted *on or after* exp, here exp + tolerance.
    assert verify(token, now=NOW + dt.timedelta(minutes=1)).verdict is Verdict.EXPIRED


def test_expiry_example_from_the_brief() -> None:
    token = encode_ticket(claims(expires_at=utc(2026, 11, 28)), KEY)
    result = verify(token, now=utc(2026, 12, 1))
    assert result.reason.startswith("expired at 2026-11-28T00:00:00+00:00")


def test_wrong_train() -> None:
    assignment = Assignment(train_number=743, date=dt.date(2026, 11, 27), timezone="Europe/Moscow")
    result = verify(TOKEN, assignment=assignment)
    assert_verdict(result, Verdict.WRONG_TRAIN, "train 742", "743")


def test_wrong_date() -> None:
    assignment = Assignment(train_number=742, date=dt.date(2026, 11, 26), timezone="Europe/Moscow")
    result = verify(TOKEN, assignment=assignment)
    assert_verdict(result, Verdict.WRONG_DATE, "2026-11-27 (Europe/Moscow)", "2026-11-26")


def test_date_is_read_in_the_assignment_timezone() -> None:
    token = encode_ticket(claims(date=utc(2026, 11, 27, 22, 30)), KEY)
    in_utc = Assignment(train_number=742, date=dt.date(2026, 11, 27), timezone="UTC")
    moscow_27 = Assignment(train_number=742, date=dt.date(2026, 11, 27), timezone="Europe/Moscow")
    moscow_28 = Assignment(train_number=742, date=dt.date(2026, 11, 28), timezone="Europe/Moscow")
    assert verify(token, assignment=in_utc).ok
    # 22:30Z is 01:30 the next day in Moscow (UTC+3).
    assert_verdict(verify(token, assignment=moscow_27), Verdict.WRONG_DATE, "2026-11-28 (Europe/Moscow)")
    assert verify(token, assignment=moscow_28).ok


def test_without_assignment_train_and_date_are_not_checked() -> None:
    assert verify(encode_ticket(claims(train_number=1, date=utc(2030, 1, 1)), KEY)).ok


def test_revoked() -> None:
    result = verify(TOKEN, is_revoked=lambda ticket_id: ticket_id == TICKET_ID)
    assert_verdict(result, Verdict.REVOKED, str(TICKET_ID))


def test_already_used() -> None:
    result = verify(TOKEN, is_used={TICKET_ID}.__contains__)
    assert_verdict(result, Verdict.ALREADY_USED, str(TICKET_ID))


def test_lookups_get_the_ticket_id() -> None:
    asked: list[uuid.UUID] = []

    def remember(ticket_id: uuid.UUID) -> bool:
        asked.append(ticket_id)
        return False

    assert verify(TOKEN, is_revoked=remember, is_used=remember).ok
    assert asked == [TICKET_ID, TICKET_ID]


LATE_KEY = TrustedKey.from_public_key(public_raw(KEY), valid_from=utc(2027, 1, 1))


@pytest.mark.parametrize(
    ("options", "verdict"),
    [
        ({"is_revoked": lambda _: True, "is_used": lambda _: True}, Verdict.REVOKED),
        (
            {"assignment": Assignment(1, dt.date(2000, 1, 1), "UTC"), "is_revoked": lambda _: True},
            Verdict.WRONG_TRAIN,
        ),
        (
            {"assignment": Assignment(742, dt.date(2000, 1, 1), "UTC"), "now": utc(2027, 1, 1)},
            Verdict.EXPIRED,
        ),
        ({"now": utc(2026, 1, 1), "trust": [LATE_KEY]}, Verdict.KEY_NOT_VALID_AT_ISSUE),
    ],
)
def test_the_first_failing_check_wins(options: dict[str, Any], verdict: Verdict) -> None:
    assert verify(TOKEN, **options).verdict is verdict


def test_unknown_key_is_reported_before_bad_claims() -> None:
    token = seal(sign1(cbor2.dumps(claims_map(code=None)), key=OTHER_KEY))
    assert verify(token).verdict is Verdict.UNKNOWN_KEY


def test_every_verdict_value_is_its_lowercase_name() -> None:
    assert {verdict.value for verdict in Verdict} == {verdict.name.lower() for verdict in Verdict}
    assert Verdict("bad_signature") is Verdict.BAD_SIGNATURE
    assert f"{Verdict.BAD_SIGNATURE}" == "bad_signature"


# --- key rotation, and the trust and assignment models' own validation ------------------------------------


def test_key_rotation_accepts_tickets_from_both_keys() -> None:
    rotated_at = utc(2026, 6, 1)
    trust = [
        TrustedKey.from_public_key(public_raw(KEY), valid_from=utc(2026, 1, 1), valid_to=rotated_at),
        TrustedKey.from_public_key(public_raw(OTHER_KEY), valid_from=rotated_at),
    ]
    old_ticket = encode_ticket(claims(issued_at=utc(2026, 5, 31), not_before=utc(2026, 5, 31)), KEY)
    new_ticket = encode_ticket(claims(), OTHER_KEY)
    assert verify(old_ticket, trust=trust).ok
    assert verify(new_ticket, trust=trust).ok
    assert verify(old_ticket, trust=trust).kid != verify(new_ticket, trust=trust).kid
    # The retired key cannot issue after its period, even with an otherwise valid window.
    late = encode_ticket(claims(), KEY)
    assert verify(late, trust=trust).verdict is Verdict.KEY_NOT_VALID_AT_ISSUE


def test_trusted_key_checks_its_kid_and_times() -> None:
    raw = public_raw(KEY)
    with pytest.raises(ValueError, match="is not key_id"):
        TrustedKey(kid=b"\x00" * 8, public_key=raw, valid_from=utc(2026, 1, 1), valid_to=None)
    with pytest.raises(ValueError, match="timezone-aware"):
        TrustedKey.from_public_key(raw, valid_from=dt.datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="before valid_from"):
        TrustedKey.from_public_key(raw, valid_from=utc(2026, 2, 1), valid_to=utc(2026, 1, 1))


def test_assignment_checks_its_date_and_timezone() -> None:
    with pytest.raises(ValueError, match="not a datetime"):
        Assignment(train_number=742, date=utc(2026, 11, 27), timezone="UTC")
    with pytest.raises(ValueError, match="unknown timezone"):
        Assignment(train_number=742, date=dt.date(2026, 11, 27), timezone="Mars/Olympus_Mons")


def test_naive_now_is_a_caller_bug() -> None:
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        verify(TOKEN, now=dt.datetime(2026, 11, 27, 20, 0))
