"""One base exception per package (house style): a caller catches `ModelsError` or `RobotAgentError` and
knows it has every error the package raises on purpose."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

from models.errors import ModelsError
from robot_agent.errors import RobotAgentError


def public_exceptions(package: str) -> list[type[BaseException]]:
    """Every exception class a module of `package` defines, but private ones (a module's own signals)."""
    found: list[type[BaseException]] = []
    for info in pkgutil.walk_packages(importlib.import_module(package).__path__, f"{package}."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        found.extend(
            cls
            for name, cls in inspect.getmembers(module, inspect.isclass)
            if cls.__module__ == module.__name__
            and issubclass(cls, BaseException)
            and not name.startswith("_")
        )
    return found


@pytest.mark.parametrize(("package", "base"), [("models", ModelsError), ("robot_agent", RobotAgentError)])
def test_every_exception_derives_from_the_packages_base(package: str, base: type[Exception]) -> None:
    errors = public_exceptions(package)
    assert len(errors) >= 4, f"found only {errors} in {package}"  # the walk found the modules
    strays = sorted(f"{cls.__module__}.{cls.__qualname__}" for cls in errors if not issubclass(cls, base))
    assert not strays, f"not derived from {base.__name__}: {strays}"
