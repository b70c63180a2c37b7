"""Task sets written by this project for the real models, and how to score a model on them.

- `base`: Task / ChoiceItem / TaskOutcome, and `compare` (score change, flipped decisions);
- `minilm_tasks`: topic retrieval (coarse) and paraphrase vs negation / changed number / swapped roles (fine);
- `smollm2_tasks` (+ `lm_texts`): perplexity on prose / code / numbers, two-choice facts, agreement;
- `score_embed` / `score_lm`: the scorers; `evaluation`: what a scorer returns (outcomes + whole-model metric).

Model knowledge is data: `TASK_SETS` maps a model key to its task builder and `SCORERS` to its scorer.
"""
from __future__ import annotations

from types import MappingProxyType

from explorer.tasks.base import ChoiceItem, Grain, Kind, Metric, Task, TaskChange, TaskOutcome, compare
from explorer.tasks.evaluation import Evaluation, WholeModel
from explorer.tasks.minilm_tasks import minilm_tasks
from explorer.tasks.score_embed import evaluate_encoder
from explorer.tasks.score_lm import evaluate_lm
from explorer.tasks.smollm2_tasks import smollm2_tasks

TASK_SETS = MappingProxyType({"minilm": minilm_tasks, "smollm2": smollm2_tasks})
SCORERS = MappingProxyType({"minilm": evaluate_encoder, "smollm2": evaluate_lm})


def model_tasks(key: str) -> tuple[Task, ...]:
    """The task set of model `key` (built deterministically on each call; cheap)."""
    if key not in TASK_SETS:
        raise ValueError(f"unknown model {key!r}; allowed: {sorted(TASK_SETS)}")
    return TASK_SETS[key]()


__all__ = ["ChoiceItem", "Evaluation", "Grain", "Kind", "Metric", "SCORERS", "TASK_SETS", "Task", "TaskChange",
           "TaskOutcome", "WholeModel", "compare", "evaluate_encoder", "evaluate_lm", "model_tasks"]
