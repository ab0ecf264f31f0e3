"""The broker credentials file's rules, as the robot and the cloud both apply them."""

from __future__ import annotations

import pytest

from models.credentials import parse_credentials


def test_a_private_username_password_file_is_read() -> None:
    assert parse_credentials("robot-1:s3cret:with:colons\n", 0o100600, "f") == (
        "robot-1",
        "s3cret:with:colons",
    )


@pytest.mark.parametrize(
    ("text", "mode", "problem"),
    [
        ("u:p", 0o100644, r"f is readable by others \(mode 0644\); run `chmod 600` on it"),
        ("u:p", 0o100640, r"mode 0640"),
        ("no colon", 0o600, "f is not `username:password`"),
        (":p", 0o600, "not `username:password`"),
        ("u:", 0o600, "not `username:password`"),
        ("", 0o600, "not `username:password`"),
    ],
)
def test_anything_else_is_refused_naming_the_file_and_the_problem(text: str, mode: int, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_credentials(text, mode, "f")
