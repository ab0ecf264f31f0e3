"""How every benchmark prints a figure: value, the baseline measured in the same run, their ratio, target."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    baseline_name: str
    baseline: float
    unit: str
    target: str = "-"
    decimals: int = 0  # for figures of a few units (a lag of 0.4 ms)

    @property
    def ratio(self) -> float:
        return self.value / self.baseline if self.baseline else float("nan")

    def line(self) -> str:
        return (
            f"{self.name:<44} {self.value:>12,.{self.decimals}f} {self.unit:<8} "
            f"baseline {self.baseline_name}: {self.baseline:>12,.{self.decimals}f}  "
            f"ratio {self.ratio:5.2f}  target {self.target}"
        )


@dataclass(frozen=True)
class Table:
    """Lines a benchmark prints as they are (an evaluation's table, a sentence), between its figures."""

    title: str
    rows: tuple[str, ...]

    def line(self) -> str:
        return "\n".join((f"## {self.title}", *self.rows))
