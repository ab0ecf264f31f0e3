"""The privilege bits both programs read the same way, and the card hash both programs make the same way."""

from __future__ import annotations

import hashlib
import hmac

from models.card_keys import card_key, card_matches
from models.privileges import ALL, Privilege

PEPPER = bytes(range(32))


def test_privileges_are_one_bit_each_and_unknown_bits_mean_nothing() -> None:
    assert [p.value for p in Privilege] == [1 << n for n in range(len(Privilege))]
    assert ALL == (1 << len(Privilege)) - 1
    assert Privilege.of(0) == Privilege(0)
    assert Privilege.of(1 << 20 | Privilege.GATE) == Privilege.GATE
    assert (Privilege.GATE | Privilege.SALES).names() == ["GATE", "SALES"]
    assert Privilege.SYNC not in Privilege.of(ALL & ~Privilege.SYNC)


def test_a_card_read_as_bytes_matches_the_key_the_cloud_made_from_its_typed_uid() -> None:
    typed = card_key(PEPPER, " 04:A1:b2:C3:d4:e5:F6 ")  # as an admin types it into the Base API
    read = bytes.fromhex("04a1b2c3d4e5f6")  # as the MCU's reader hands it to the robot
    assert typed == card_key(PEPPER, read)
    assert typed == hmac.new(PEPPER, b"04a1b2c3d4e5f6", hashlib.sha256).hexdigest()
    assert card_matches(PEPPER, read, typed)
    assert card_matches(PEPPER, read, typed.upper())
    assert not card_matches(PEPPER, read + b"\x00", typed)
    assert not card_matches(bytes(32), read, typed)
