"""The robot agent's exceptions: everything it raises on purpose derives from RobotAgentError."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class RobotAgentError(Exception):
    """Base of the robot agent's errors."""


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a configuration file: where (a dotted key) and what."""

    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}" if self.key else self.message


class ConfigError(RobotAgentError):
    """A configuration file that cannot be used; lists every problem found, each with its key."""

    def __init__(self, path: Path, problems: list[ConfigProblem]) -> None:
        self.path = path
        self.problems = problems
        super().__init__("\n".join(f"{path}: {problem}" for problem in problems))


class KeyFileError(RobotAgentError):
    """The robot's key file cannot be created or read."""


class WeightsError(RobotAgentError):
    """Model files that cannot be fetched, verified or built (`robot-agent models ...`)."""


class FacesError(RobotAgentError):
    """The robot's face features cannot do what was asked: no face key or a wrong one, model files
    missing, an image that cannot be read (robot_agent/faces/)."""
