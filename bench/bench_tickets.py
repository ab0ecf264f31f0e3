"""RB1 tickets issued and verified per second vs raw Ed25519 sign and verify on a Sig_structure-sized payload.

Issuing is CBOR, COSE, zlib and base45 around one signature; verifying is the reverse plus the claims'
validation. The ratio shows what the envelope costs over the signature itself.
"""

from __future__ import annotations

import datetime as dt
import os
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from bench.report import Figure
from models.tickets import TicketClaims, TrustedKey, decode_envelope, encode_ticket, verify_ticket

T = TypeVar("T")
U = TypeVar("U")

TICKETS = 3_000
ROUNDS = 15
ISSUE_TARGET = 0.50


def _claims(now: dt.datetime) -> list[TicketClaims]:
    """Distinct tickets for one evening train, as the cloud issues them after a purchase."""
    departure = (now + dt.timedelta(hours=3)).replace(minute=40, second=0)
    user = uuid.uuid4()
    return [
        TicketClaims(
            ticket_id=uuid.uuid4(),
            user_id=user,
            train_number=742,
            wagon_number=i % 20 + 1,
            place_number=i % 60 + 1,
            date=departure,
            station_id="2000000",
            destination_id="2004000",
            start_date=departure,
            code=f"CODE{i:08d}",
            issued_at=now,
            not_before=now,
            expires_at=departure + dt.timedelta(days=1),
        )
        for i in range(TICKETS)
    ]


def _paired_rates(
    work: Callable[[T], object],
    inputs: Sequence[T],
    baseline: Callable[[U], object],
    baseline_inputs: Sequence[U],
) -> tuple[float, float]:
    """Calls per second of `work` and of `baseline`, measured in alternating rounds, best round of each.

    Alternating makes both sides meet the same load from the rest of this shared machine; the best round is
    the least disturbed one.
    """
    size = len(inputs) // ROUNDS
    best_work = best_base = float("inf")
    for round_ in range(ROUNDS):
        chunk = slice(round_ * size, (round_ + 1) * size)
        start = time.perf_counter()
        for item in inputs[chunk]:
            work(item)
        middle = time.perf_counter()
        for other in baseline_inputs[chunk]:
            baseline(other)
        end = time.perf_counter()
        best_work = min(best_work, middle - start)
        best_base = min(best_base, end - middle)
    return size / best_work, size / best_base


def run() -> list[Figure]:
    key = Ed25519PrivateKey.generate()
    public = key.public_key()
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    claims = _claims(now)

    tokens = [encode_ticket(c, key) for c in claims]
    message_size = len(decode_envelope(tokens[0]).to_be_signed())
    # Fresh bytes per call, like the fresh claims: nothing may be cached between calls on either side.
    messages = [os.urandom(message_size) for _ in range(TICKETS)]
    issue_rate, sign_rate = _paired_rates(lambda c: encode_ticket(c, key), claims, key.sign, messages)
    trust = [
        TrustedKey.from_public_key(
            public.public_bytes(Encoding.Raw, PublicFormat.Raw), valid_from=now - dt.timedelta(hours=1)
        )
    ]
    refused = [r for r in (verify_ticket(t, trust=trust, now=now) for t in tokens) if not r.ok]
    if refused:
        raise RuntimeError(f"{len(refused)} of {TICKETS} fresh tickets refused: {refused[0].reason}")
    signed = [(key.sign(m), m) for m in messages]
    verify_rate, raw_verify_rate = _paired_rates(
        lambda t: verify_ticket(t, trust=trust, now=now), tokens, lambda pair: public.verify(*pair), signed
    )
    return [
        Figure(
            "tickets issued/s, encode_ticket",
            issue_rate,
            f"raw Ed25519 sign, {message_size} B",
            sign_rate,
            "ops/s",
            f">= {ISSUE_TARGET:.2f}",
        ),
        Figure(
            "tickets verified/s, verify_ticket",
            verify_rate,
            f"raw Ed25519 verify, {message_size} B",
            raw_verify_rate,
            "ops/s",
        ),
    ]
