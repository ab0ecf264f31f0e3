"""The catalogue of what the robot says: every key in every language with the same parameters, every refused
verdict in plain words, and `[behaviour]` in robot.toml choosing the language."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest

from models.tickets import Verdict
from robot_agent.behaviour.texts import (
    CATALOGUE,
    LANGUAGES,
    SoundCue,
    placeholders,
    refusal_key,
    utterance,
)
from robot_agent.config import BehaviourSection

CYRILLIC = re.compile("[\u0400-\u04ff]")
BEHAVIOUR = Path(__file__).resolve().parents[2] / "robot_agent" / "behaviour"


@pytest.mark.parametrize("key", sorted(CATALOGUE))
def test_every_key_is_in_every_language_with_the_same_parameters(key: str) -> None:
    texts = CATALOGUE[key].texts
    assert set(texts) == set(LANGUAGES) == {"ru", "en"}
    assert all(text.strip() for text in texts.values())
    assert placeholders(texts["ru"]) == placeholders(texts["en"])
    assert CYRILLIC.search(texts["ru"]), "the Russian text is not in Russian"
    assert not CYRILLIC.search(texts["en"]), "the English text has Cyrillic in it"


def test_every_refused_verdict_has_plain_words_and_valid_has_none() -> None:
    refused = [v for v in Verdict if v is not Verdict.VALID]
    assert all(refusal_key(v) in CATALOGUE for v in refused)
    assert refusal_key(Verdict.VALID) not in CATALOGUE
    for verdict in refused:
        entry = CATALOGUE[refusal_key(verdict)]
        assert entry.cue is SoundCue.REFUSAL
        # Plain words: none of the verifier's vocabulary.
        for word in ("cose", "cbor", "base45", "zlib", "kid", "claim", "signature", "holder"):
            assert word not in entry.texts["en"].lower(), (verdict, word)


def test_every_key_the_behaviour_names_is_in_the_catalogue() -> None:
    named: set[str] = set()
    for path in BEHAVIOUR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute | ast.Name)
                and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("_say", "utterance")
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                named.add(node.args[0].value)
    assert named, "found no keys: the test no longer reads the machine"
    assert named <= set(CATALOGUE)
    assert named | {refusal_key(v) for v in Verdict if v is not Verdict.VALID} == set(CATALOGUE)


def test_an_utterance_is_its_text_filled_in_with_its_cue() -> None:
    said = utterance("valid", "ru", wagon=3, place=12)
    assert (said.text, said.cue, said.language) == (
        "Добро пожаловать! Вагон 3, место 12.",
        SoundCue.CHIME,
        "ru",
    )
    assert said.as_json() == {
        "key": "valid",
        "text": "Добро пожаловать! Вагон 3, место 12.",
        "cue": "chime",
        "language": "ru",
    }
    with pytest.raises(KeyError):
        utterance("valid", "en")  # a parameter missing is a bug, not silence
    with pytest.raises(KeyError):
        utterance("no such key", "en")


def test_behaviour_defaults_to_russian_and_names_a_language_it_does_not_have() -> None:
    assert BehaviourSection().language == "ru"
    assert BehaviourSection.model_validate({"language": "en"}).language == "en"
    with pytest.raises(ValueError, match="language"):
        BehaviourSection.model_validate({"language": "de"})


def test_the_example_robot_toml_shows_every_behaviour_key_at_its_default() -> None:
    example = tomllib.loads((BEHAVIOUR.parents[1] / "robot.toml").read_text(encoding="utf-8"))["behaviour"]
    assert set(example) == set(BehaviourSection.model_fields)
    assert BehaviourSection.model_validate(example, strict=True) == BehaviourSection()
