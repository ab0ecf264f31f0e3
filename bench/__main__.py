"""`make bench`: run every benchmark and print each figure next to its same-run baseline."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import bench


def main() -> None:
    for module_info in sorted(pkgutil.iter_modules([str(Path(bench.__file__).parent)]), key=lambda m: m.name):
        if not module_info.name.startswith("bench_"):
            continue
        module = importlib.import_module(f"bench.{module_info.name}")
        print(f"# {module_info.name}: {(module.__doc__ or '').strip().splitlines()[0]}", flush=True)
        for figure in module.run():
            print(figure.line(), flush=True)


if __name__ == "__main__":
    main()
