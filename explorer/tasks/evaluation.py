"""What evaluating one model on its tasks returns: per-task outcomes plus one whole-model metric against the
unquantized model (embedding cosine per sentence, or next-token KL divergence per token), the average a user
would look at while a task breaks underneath it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from explorer.tasks.base import TaskOutcome


@dataclass(frozen=True, eq=False)
class WholeModel:
    """A whole-model metric of a quantized model vs the unquantized one, one value per sentence or token.

    label: what it is ("embedding cosine vs unquantized"); unit: what one value is; higher_is_better: cosine
    True, KL False; extras: further headline numbers by name (e.g. next-token top-1 agreement).
    """

    label: str
    unit: str
    values: np.ndarray
    higher_is_better: bool
    extras: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))

    @property
    def mean(self) -> float:
        return float(self.values.mean())

    @property
    def worst(self) -> float:
        """min for a cosine, max for a divergence."""
        return float(self.values.min() if self.higher_is_better else self.values.max())

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.values, q))

    def summary(self) -> dict[str, float]:
        """mean, median, 99th and 99.9th percentile (of the bad tail), worst value, as named numbers."""
        tail = (1.0, 0.1) if self.higher_is_better else (99.0, 99.9)
        names = ("p1", "p0.1") if self.higher_is_better else ("p99", "p99.9")
        out = {"mean": self.mean, "median": self.percentile(50.0)}
        out.update({n: self.percentile(q) for n, q in zip(names, tail)})
        out["min" if self.higher_is_better else "max"] = self.worst
        out.update(self.extras)
        return out


@dataclass(frozen=True, eq=False)
class Evaluation:
    """One model scored on a model's task set.

    outcomes: task key -> TaskOutcome; whole: the whole-model metric vs the reference (None for the reference
    itself); embeddings [n_sentences, d] float32: the reference encoder's sentence embeddings, which later
    evaluations compare with (None for LMs and for evaluations against a reference); seconds: wall time.
    """

    outcomes: MappingProxyType
    whole: WholeModel | None
    embeddings: np.ndarray | None
    seconds: float

    def outcome(self, task: str) -> TaskOutcome:
        if task not in self.outcomes:
            raise ValueError(f"unknown task {task!r}; allowed: {list(self.outcomes)}")
        return self.outcomes[task]
