"""What a task is, what scoring one model on it gives, and how a quantized model's outcome compares with the
unquantized one's.

A `Task` holds either two-or-more-choice items (`ChoiceItem`: a query and its candidates, one of them right) or
plain texts (perplexity). Scoring a model turns every *decision* (an item's chosen candidate, or a next-token
top-1 prediction in a text) into a `TaskOutcome`: what was chosen, whether it was right, and by what margin.
`compare(task, base, quantized)` gives the score change and the decisions that flipped, the measure
shared/facts/real-weights.md asks for: small task sets swing by noise alone, flips against the unquantized model
do not.
"""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np


class Metric(enum.Enum):
    """How a task is scored, and in which unit its change is read."""

    ACCURACY = "accuracy"      # fraction of decisions right; change in percentage points
    PERPLEXITY = "perplexity"  # exp(mean next-token NLL), lower is better; change in percent


class Kind(enum.Enum):
    """Which model call scores the task."""

    EMBED_CHOICE = "embed_choice"  # sentence encoder: the candidate closest to the query (cosine) is chosen
    LM_CHOICE = "lm_choice"        # causal LM: the candidate continuation with the highest log-likelihood
    LM_TEXT = "lm_text"            # causal LM: perplexity of texts; decisions = next-token top-1 predictions


class Grain(enum.Enum):
    """How fine a distinction the task needs (coarse: topic; fine: one word changes the meaning)."""

    COARSE = "coarse"
    MEDIUM = "medium"
    FINE = "fine"


@dataclass(frozen=True)
class ChoiceItem:
    """One decision: `query` and its `choices`; `answer` indexes the right one."""

    query: str
    choices: tuple[str, ...]
    answer: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.choices, tuple) or len(self.choices) < 2:
            raise ValueError(f"an item needs a tuple of >= 2 choices, got {self.choices!r}")
        if len(set(self.choices)) != len(self.choices):
            raise ValueError(f"choices repeat: {self.choices!r}; allowed: distinct strings")
        if not 0 <= self.answer < len(self.choices):
            raise ValueError(f"answer={self.answer} is not allowed; choose 0..{len(self.choices) - 1}")


@dataclass(frozen=True)
class Task:
    """A named task of one model. Exactly one of `items` (choice kinds) or `texts` (LM_TEXT) is non-empty.

    description: what it measures and how its items were made, shown as is in the app (say when templated).
    """

    key: str
    model: str
    title: str
    kind: Kind
    grain: Grain
    description: str
    items: tuple[ChoiceItem, ...] = ()
    texts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind is Kind.LM_TEXT:
            if not self.texts or self.items:
                raise ValueError(f"task {self.key!r}: kind lm_text needs texts and no items")
        elif not self.items or self.texts:
            raise ValueError(f"task {self.key!r}: kind {self.kind.value} needs items and no texts")
        elif len({len(i.choices) for i in self.items}) != 1:
            raise ValueError(f"task {self.key!r}: every item must have the same number of choices")

    @property
    def metric(self) -> Metric:
        return Metric.PERPLEXITY if self.kind is Kind.LM_TEXT else Metric.ACCURACY

    @property
    def size(self) -> int:
        """Items (or texts) in the task."""
        return len(self.texts) if self.kind is Kind.LM_TEXT else len(self.items)


@dataclass(frozen=True, eq=False)
class TaskOutcome:
    """One model on one task, per decision (n decisions).

    pred [n] int64: chosen candidate index (choice tasks) or predicted token id (text tasks);
    correct [n] bool; margin [n] float32: score of the right candidate minus the best other one (cosine or
    log-probability), negative when the decision is wrong; prompts / pred_text: the query (or the text before
    the token) and what was chosen, for showing examples; score: accuracy or perplexity.
    """

    task: str
    pred: np.ndarray
    correct: np.ndarray
    margin: np.ndarray
    prompts: tuple[str, ...]
    pred_text: tuple[str, ...]
    score: float

    def __post_init__(self) -> None:
        n = len(self.pred)
        if not (len(self.correct) == len(self.margin) == len(self.prompts) == len(self.pred_text) == n):
            raise ValueError(f"outcome of {self.task!r}: per-decision arrays differ in length")


@dataclass(frozen=True, eq=False)
class TaskChange:
    """A quantized model's outcome against the unquantized one on one task.

    change: score - base score (accuracy: in points x 100; perplexity: relative, in percent);
    damage: the change read as harm, in the same percent units (positive = worse), what the cliff finder ranks;
    flipped [k] int64: decisions whose choice changed; broke / fixed: of those, right -> wrong and wrong -> right.
    """

    task: str
    metric: Metric
    base_score: float
    score: float
    change: float
    damage: float
    flipped: np.ndarray
    broke: int
    fixed: int
    n: int

    @property
    def flip_rate(self) -> float:
        return len(self.flipped) / self.n if self.n else 0.0


def compare(task: Task, base: TaskOutcome, quant: TaskOutcome) -> TaskChange:
    """How `quant` differs from `base` on `task` (both scored on the same decisions)."""
    if base.task != task.key or quant.task != task.key:
        raise ValueError(f"outcomes of {base.task!r} / {quant.task!r} do not belong to task {task.key!r}")
    if len(base.pred) != len(quant.pred):
        raise ValueError(f"{task.key}: {len(base.pred)} base decisions vs {len(quant.pred)} quantized ones")
    flipped = np.flatnonzero(base.pred != quant.pred)
    broke = int((base.correct & ~quant.correct).sum())
    fixed = int((~base.correct & quant.correct).sum())
    if task.metric is Metric.ACCURACY:
        change = 100.0 * (quant.score - base.score)
        damage = -change
    else:
        change = 100.0 * (quant.score / base.score - 1.0) if math.isfinite(quant.score) else math.inf
        damage = change
    return TaskChange(task.key, task.metric, base.score, quant.score, change, damage, flipped, broke, fixed,
                      len(base.pred))
