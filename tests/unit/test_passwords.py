"""Engineers' passwords: every byte counts, the hash fits the seed's column, bad hashes never match."""

from __future__ import annotations

from models.passwords import check_password, hash_password


def test_hash_fits_the_seed_column_and_checks() -> None:
    stored = hash_password("correct horse", rounds=4)
    assert len(stored) == 60
    assert stored.startswith("$2b$04$")
    assert check_password("correct horse", stored)
    assert not check_password("correct horsE", stored)


def test_characters_past_bcrypts_72_bytes_still_count() -> None:
    base = "é" * 40  # 80 bytes in UTF-8
    stored = hash_password(base + "a", rounds=4)
    assert check_password(base + "a", stored)
    assert not check_password(base + "b", stored)


def test_a_malformed_stored_hash_never_matches() -> None:
    for stored in ("", "plain-text", "$2b$04$short", "ø" * 60):
        assert not check_password("anything", stored)
