"""A broker credentials file's rules (`username:password`, readable by its owner only), shared by the robot
and the cloud; each reads the file itself (models does no I/O) and hands over its text and mode."""

from __future__ import annotations


def parse_credentials(text: str, mode: int, where: str) -> tuple[str, str]:
    """(username, password) from the file `where` with contents `text` and permission bits `mode`;
    ValueError naming the problem otherwise."""
    if mode & 0o077:
        raise ValueError(f"{where} is readable by others (mode {mode & 0o777:04o}); run `chmod 600` on it")
    username, sep, password = text.strip().partition(":")
    if not sep or not username or not password:
        raise ValueError(f"{where} is not `username:password`")
    return username, password
