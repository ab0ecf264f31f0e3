"""What several of robot-agent's command groups share: the --config default, loading it (which also sets up
logging from its [logging] section), printing rows as an aligned table, and progress lines on stderr."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from models import logformat

if TYPE_CHECKING:
    from robot_agent.config import RobotConfig

Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

DEFAULT_CONFIG = Path("robot.toml")


def load(args: argparse.Namespace, path: Path | None = None, **options: bool) -> RobotConfig:
    """Load the configuration and switch logging to its [logging] section, unless flags said otherwise."""
    # Here, not at the top: robot_agent.config brings in the face models' choice (OpenCV, ONNX Runtime),
    # which `--help` and a parse error need not wait for.
    from robot_agent.config import load_config

    config = load_config(path or args.config, **options)
    settings = config.logging
    if settings.file is not None:
        settings.file.parent.mkdir(parents=True, exist_ok=True)
    logformat.configure(
        args.log_level or settings.level,
        args.log_format or settings.format,
        str(settings.file) if settings.file is not None else None,
    )
    return config


def print_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [list(header), *[["" if value is None else str(value) for value in row] for row in rows]]
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]
    cells.insert(1, ["-" * width for width in widths])
    for line in cells:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())


def progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
