"""Scoring a sentence encoder (MiniLM) on choice tasks: embed every distinct sentence once, then decide each
item by cosine similarity (embeddings are unit-norm, so cosine = dot product).

Whole-model metric: the cosine between each sentence's embedding and the unquantized model's embedding of the
same sentence, over every task sentence (shared/facts/real-weights.md measured its mean per scheme).
"""
from __future__ import annotations

import time
from types import MappingProxyType
from typing import Sequence

import numpy as np
import torch

from explorer.tasks.base import Kind, Task, TaskOutcome
from explorer.tasks.evaluation import Evaluation, WholeModel

BATCH = 128  # sentences per forward: short sentences, little padding (encode sorts by length)


def task_sentences(tasks: Sequence[Task]) -> tuple[str, ...]:
    """Every distinct sentence of the tasks (queries and choices), in first-seen order."""
    seen: dict[str, None] = {}
    for t in tasks:
        for item in t.items:
            seen.setdefault(item.query, None)
            for c in item.choices:
                seen.setdefault(c, None)
    return tuple(seen)


def _check(tasks: Sequence[Task]) -> None:
    bad = [t.key for t in tasks if t.kind is not Kind.EMBED_CHOICE]
    if bad:
        raise ValueError(f"tasks {bad} are not embedding tasks; allowed kind: {Kind.EMBED_CHOICE.value}")


def outcome_from_embeddings(task: Task, emb: torch.Tensor, index: dict[str, int]) -> TaskOutcome:
    """Decide every item of `task` from unit-norm embeddings emb [n_sentences, d] (rows looked up by `index`)."""
    q = torch.tensor([index[i.query] for i in task.items], device=emb.device)
    c = torch.tensor([[index[s] for s in i.choices] for i in task.items], device=emb.device)  # [n, k]
    answer = torch.tensor([i.answer for i in task.items], device=emb.device)
    sims = torch.einsum("nd,nkd->nk", emb[q].float(), emb[c].float())  # [n, k]
    pred = sims.argmax(dim=1)
    right = sims.gather(1, answer[:, None]).squeeze(1)
    others = sims.scatter(1, answer[:, None], float("-inf")).amax(dim=1)
    margin = (right - others).cpu().numpy().astype(np.float32)
    pred_np = pred.cpu().numpy().astype(np.int64)
    correct = pred_np == answer.cpu().numpy()
    return TaskOutcome(task.key, pred_np, correct, margin, tuple(i.query for i in task.items),
                       tuple(i.choices[p] for i, p in zip(task.items, pred_np)), float(correct.mean()))


def evaluate_encoder(model, tasks: Sequence[Task], reference: Evaluation | None = None,
                     reference_model=None, batch_size: int = BATCH) -> Evaluation:
    """Score an encoder with `.encode(list[str]) -> [n, d]` on embedding tasks.

    reference: the unquantized model's Evaluation (its embeddings give the whole-model cosine); None when
    `model` is the reference. reference_model is not needed here (accepted so every scorer has one signature).
    """
    _check(tasks)
    start = time.perf_counter()
    sentences = task_sentences(tasks)
    index = {s: i for i, s in enumerate(sentences)}
    emb = model.encode(list(sentences), batch_size=batch_size)
    outcomes = {t.key: outcome_from_embeddings(t, emb, index) for t in tasks}
    emb_np = emb.float().cpu().numpy()
    whole = None
    if reference is not None:
        if reference.embeddings is None or reference.embeddings.shape != emb_np.shape:
            raise ValueError("the reference evaluation has no embeddings of these sentences")
        cos = (emb_np.astype(np.float64) * reference.embeddings).sum(axis=1)  # both unit-norm
        whole = WholeModel("embedding cosine vs unquantized", "cosine per task sentence", cos.astype(np.float32),
                           higher_is_better=True)
    # only the reference keeps its embeddings (what later evaluations compare with): results stay small in caches
    keep = emb_np if reference is None else None
    return Evaluation(MappingProxyType(outcomes), whole, keep, time.perf_counter() - start)
