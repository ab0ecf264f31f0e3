"""The keyed hash an auth card is stored and matched by: HMAC-SHA256 of its UID under the fleet's card pepper.

The cloud makes it when an admin registers a card (`POST /base_api/admin/auth_card`, the UID typed as hex,
colons allowed); the robot makes it from the UID its card reader read, and compares it in constant time with
the `auth_cards` rows it synced. Both must hash the very same text, so the normalisation lives here once: the
UID's bytes as lower-case hex without separators. The UID is an identifier, not a secret, but it is never
stored or logged (shared/notes/serial-facts.md, "Auth cards"); the pepper never leaves its 0600 file.
"""

from __future__ import annotations

import hashlib
import hmac

PEPPER_BYTES = 32


def normalized_uid(uid: str | bytes) -> str:
    """A UID typed as hex ("04:A1:b2 ...") or read as bytes, as the text that is hashed."""
    if isinstance(uid, bytes):
        return uid.hex()
    return uid.strip().replace(":", "").lower()


def card_key(pepper: bytes, uid: str | bytes) -> str:
    """The stored form of a card's UID (64 hex digits)."""
    return hmac.new(pepper, normalized_uid(uid).encode(), hashlib.sha256).hexdigest()


def card_matches(pepper: bytes, uid: bytes, stored: str) -> bool:
    """Whether a card read as `uid` is the one `stored` was made from, in constant time."""
    return hmac.compare_digest(card_key(pepper, uid), stored.strip().lower())
