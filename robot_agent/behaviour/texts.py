# Russian text is Cyrillic on purpose: RUF001's "ambiguous letter" warnings are all false here.
# ruff: noqa: RUF001
"""Everything the robot says, in one catalogue: each key's sound cue and its text in Russian and English.

The behaviour names what to say by key (`utterance(key, language, **params)`); the text is chosen here by
robot.toml's `[behaviour] language`, so adding a language is adding a column, and a text is fixed in one
place. A refusal is said in plain words a passenger understands ("this ticket is for another train"), one key
per ticket verdict (`refused.<verdict>`): the verifier's technical reason ("kid 0a1b... unknown") is for the
logs and the engineers, never spoken. Parameters are named (`{wagon}`), the same in every language (a unit
test holds every key to both languages and every verdict to a text).
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, Literal, get_args

from models.tickets import Verdict

Language = Literal["ru", "en"]
LANGUAGES: Final[tuple[Language, ...]] = get_args(Language)


class SoundCue(StrEnum):
    """The sound played before a text: a speaker backend maps each to a sound of its own."""

    NONE = "none"
    GREETING = "greeting"
    CHIME = "chime"  # let in
    REFUSAL = "refusal"
    ALARM = "alarm"  # the e-stop


@dataclass(frozen=True)
class Entry:
    cue: SoundCue
    texts: dict[Language, str]


@dataclass(frozen=True)
class Utterance:
    """One thing the robot says: its catalogue key (for logs and tests), the text in the robot's language,
    the sound before it, and the parameters the text was made with (nothing personal beyond what it shows)."""

    key: str
    text: str
    cue: SoundCue
    language: Language
    params: dict[str, str | int] = field(default_factory=dict)

    def as_json(self) -> dict[str, str]:
        return {"key": self.key, "text": self.text, "cue": self.cue.value, "language": self.language}


def refusal_key(verdict: Verdict) -> str:
    """The catalogue key of a refused verdict's plain words."""
    return f"refused.{verdict.value}"


_UNREADABLE: Final[dict[Language, str]] = {
    "ru": "Не могу прочитать этот код: он повреждён или это не билет. Покажите его ещё раз или обратитесь "
    "к проводнику.",
    "en": "I cannot read this code: it is damaged or not a ticket. Please show it again or ask the "
    "conductor.",
}
_NOT_OURS: Final[dict[Language, str]] = {
    "ru": "Не могу подтвердить, кто выдал этот билет. Пожалуйста, обратитесь к проводнику.",
    "en": "I cannot confirm who issued this ticket. Please ask the conductor.",
}


def _refused(ru: str, en: str) -> Entry:
    return Entry(SoundCue.REFUSAL, {"ru": ru, "en": en})


CATALOGUE: Final[dict[str, Entry]] = {
    "greeting": Entry(
        SoundCue.GREETING,
        {
            "ru": "Здравствуйте! Покажите, пожалуйста, QR-код билета камере.",
            "en": "Hello! Please show your ticket's QR code to the camera.",
        },
    ),
    "show_code": Entry(
        SoundCue.NONE,
        {
            "ru": "Не нашёл вашего билета. Покажите, пожалуйста, его QR-код.",
            "en": "I could not find your ticket. Please show its QR code.",
        },
    ),
    "timeout": Entry(
        SoundCue.NONE,
        {
            "ru": "До свидания! Покажите билет, когда будете готовы.",
            "en": "Goodbye! Show your ticket whenever you are ready.",
        },
    ),
    "valid": Entry(
        SoundCue.CHIME,
        {
            "ru": "Добро пожаловать! Вагон {wagon}, место {place}.",
            "en": "Welcome aboard! Wagon {wagon}, place {place}.",
        },
    ),
    # A valid ticket the robot holds no copy of (not synced yet): its wagon and place are not known here.
    "valid_plain": Entry(
        SoundCue.CHIME,
        {"ru": "Добро пожаловать! Хорошей поездки.", "en": "Welcome aboard! Have a good journey."},
    ),
    # A passenger whose order is ready identified again: its compartment opens (numbered from 1 aloud).
    "order_ready": Entry(
        SoundCue.CHIME,
        {
            "ru": "Ваш заказ готов: откройте ячейку {compartment}.",
            "en": "Your order is ready: take it from compartment {compartment}.",
        },
    ),
    "hotels": Entry(
        SoundCue.NONE,
        {"ru": "Гостиницы там, куда вы едете: {names}.", "en": "Hotels where you are going: {names}."},
    ),
    "attractions": Entry(
        SoundCue.NONE,
        {"ru": "Что там посмотреть: {names}.", "en": "Worth seeing there: {names}."},
    ),
    "estop_halted": Entry(
        SoundCue.ALARM,
        {
            "ru": "Аварийная остановка: я остановлен. Пожалуйста, дождитесь персонала.",
            "en": "Emergency stop: I have stopped. Please wait for the staff.",
        },
    ),
    "estop_released": Entry(
        SoundCue.GREETING,
        {
            "ru": "Аварийная остановка снята: я снова работаю.",
            "en": "Emergency stop released: I am working again.",
        },
    ),
    refusal_key(Verdict.BAD_PREFIX): _refused(
        "Этот код — не билет. Покажите, пожалуйста, QR-код билета.",
        "This code is not a ticket. Please show your ticket's QR code.",
    ),
    **{
        refusal_key(verdict): Entry(SoundCue.REFUSAL, dict(_UNREADABLE))
        for verdict in (
            Verdict.BAD_BASE45,
            Verdict.BAD_ZLIB,
            Verdict.TOO_LARGE,
            Verdict.BAD_CBOR,
            Verdict.BAD_COSE,
        )
    },
    **{
        refusal_key(verdict): Entry(SoundCue.REFUSAL, dict(_NOT_OURS))
        for verdict in (
            Verdict.UNSUPPORTED_ALGORITHM,
            Verdict.UNKNOWN_KEY,
            Verdict.KEY_NOT_VALID_AT_ISSUE,
            Verdict.BAD_SIGNATURE,
        )
    },
    refusal_key(Verdict.BAD_CLAIMS): _refused(
        "В этом билете не хватает данных. Пожалуйста, обратитесь к проводнику.",
        "This ticket's details are incomplete. Please ask the conductor.",
    ),
    refusal_key(Verdict.BAD_HOLDER_PROOF): _refused(
        "Не могу подтвердить живой код билета. Откройте билет в приложении ещё раз.",
        "I cannot confirm this ticket's live code. Please open the ticket in your app again.",
    ),
    refusal_key(Verdict.HOLDER_PROOF_MISSING): _refused(
        "Этот билет нужно показать из приложения, живым кодом.",
        "This ticket must be shown live from your app.",
    ),
    refusal_key(Verdict.HOLDER_PROOF_STALE): _refused(
        "Этот код устарел. Обновите его в приложении и покажите снова.",
        "This code is too old. Please refresh it in your app and show it again.",
    ),
    refusal_key(Verdict.NOT_YET_VALID): _refused(
        "Этот билет ещё не действует.", "This ticket is not valid yet."
    ),
    refusal_key(Verdict.EXPIRED): _refused("Срок действия этого билета истёк.", "This ticket has expired."),
    refusal_key(Verdict.WRONG_TRAIN): _refused(
        "Этот билет на другой поезд.", "This ticket is for another train."
    ),
    refusal_key(Verdict.WRONG_DATE): _refused(
        "Этот билет на другой день.", "This ticket is for another day."
    ),
    refusal_key(Verdict.REVOKED): _refused("Этот билет аннулирован.", "This ticket has been cancelled."),
    refusal_key(Verdict.ALREADY_USED): _refused(
        "По этому билету уже прошли.", "This ticket has already been used."
    ),
}


def placeholders(text: str) -> set[str]:
    """The named parameters a text takes."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def utterance(key: str, language: Language, **params: str | int) -> Utterance:
    """The catalogue's `key` in `language`, its parameters filled in; a `KeyError` for an unknown key or a
    missing parameter (a bug: the catalogue's test holds every key the behaviour uses)."""
    entry = CATALOGUE[key]
    return Utterance(key, entry.texts[language].format(**params), entry.cue, language, dict(params))
