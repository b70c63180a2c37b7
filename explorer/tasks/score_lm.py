"""Scoring a causal LM (SmolLM2) on choice and perplexity tasks.

Choice items: log-likelihood of each continuation given the prompt, summed over its tokens (prompt and
continuation tokenized separately, as lm-evaluation-harness does); an item whose continuations are all one token
needs one forward pass of the prompt. Text tasks: next-token NLL over each passage (perplexity = exp(mean NLL)),
and every next-token top-1 prediction as a decision.

Whole-model metric: KL(P_unquantized || P_quantized) of the next-token distributions at every token of the text
tasks (llama.cpp's `perplexity --kl-divergence` reports the same: mean, median, 99th / 99.9th percentile, max),
plus the top-1 agreement. Logits are only formed at the positions that are scored (the 49,152-wide output
projection dominates the cost otherwise).
"""
from __future__ import annotations

import time
from types import MappingProxyType
from typing import Sequence

import numpy as np
import torch

from explorer.tasks.base import ChoiceItem, Kind, Task, TaskOutcome
from explorer.tasks.evaluation import Evaluation, WholeModel

BATCH = 32          # sequences per forward
MAX_TEXT_TOKENS = 512
_CONTEXT_CHARS = 60  # characters of text shown before a token in examples


def _logprobs_at(model, h: torch.Tensor) -> torch.Tensor:
    """Final hidden states h [n, d] -> next-token log-probabilities [n, vocab] float32."""
    return (h.float() @ model.embed.weight.float().T).log_softmax(-1)


def _run(model, seqs: list[list[int]], wanted: list[list[int]]) -> list[torch.Tensor]:
    """For each token sequence, log-probabilities [len(wanted[i]), vocab] predicted *at* the wanted positions.
    Sequences are right-padded (causal attention keeps the padding invisible to real tokens)."""
    dev = model.embed.weight.device
    out: list[torch.Tensor] = [torch.empty(0)] * len(seqs)
    order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
    for start in range(0, len(order), BATCH):
        idx = order[start:start + BATCH]
        width = max(len(seqs[i]) for i in idx)
        ids = torch.tensor([seqs[i] + [0] * (width - len(seqs[i])) for i in idx], dtype=torch.long, device=dev)
        with torch.no_grad():
            h = model.hidden(ids)
            for row, i in enumerate(idx):
                out[i] = _logprobs_at(model, h[row, wanted[i]])
    return out


def choice_logliks(model, items: Sequence[ChoiceItem]) -> np.ndarray:
    """Summed log-likelihood of every continuation: [n_items, n_choices] float64."""
    seqs, wanted, plan = [], [], []  # plan: (first sequence of the item, its continuations, one pass?)
    for item in items:
        p = model.encode_text(item.query)
        cs = [model.encode_text(c) for c in item.choices]
        single = all(len(c) == 1 for c in cs)
        plan.append((len(seqs), cs, single))
        if single:  # one pass: the last position scores every one-token continuation
            seqs.append(p)
            wanted.append([len(p) - 1])
        else:
            for c in cs:
                seqs.append(p + c)
                wanted.append(list(range(len(p) - 1, len(p) + len(c) - 1)))
    lps = _run(model, seqs, wanted)
    rows = []
    for at, cs, single in plan:
        if single:
            rows.append([float(lps[at][0, c[0]]) for c in cs])
        else:
            rows.append([float(lps[at + j].gather(1, torch.tensor(c, device=lps[at + j].device)[:, None]).sum())
                         for j, c in enumerate(cs)])
    return np.asarray(rows, dtype=np.float64)


def _choice_outcome(model, task: Task) -> TaskOutcome:
    ll = choice_logliks(model, task.items)
    answer = np.array([i.answer for i in task.items])
    pred = ll.argmax(axis=1)
    right = ll[np.arange(len(ll)), answer]
    others = np.where(np.arange(ll.shape[1])[None, :] == answer[:, None], -np.inf, ll).max(axis=1)
    correct = pred == answer
    return TaskOutcome(task.key, pred.astype(np.int64), correct, (right - others).astype(np.float32),
                       tuple(i.query for i in task.items),
                       tuple(i.choices[p] for i, p in zip(task.items, pred)), float(correct.mean()))


def _text_logprobs(model, task: Task) -> tuple[list[list[int]], list[torch.Tensor]]:
    seqs = [model.encode_text(t)[:MAX_TEXT_TOKENS] for t in task.texts]
    return seqs, _run(model, seqs, [list(range(len(s) - 1)) for s in seqs])


def _text_outcome(model, task: Task, seqs, lps) -> TaskOutcome:
    preds, correct, margin, prompts, nll = [], [], [], [], []
    for s, lp in zip(seqs, lps):
        target = torch.tensor(s[1:], device=lp.device)
        right = lp.gather(1, target[:, None]).squeeze(1)
        best = lp.argmax(dim=1)
        others = lp.scatter(1, target[:, None], float("-inf")).amax(dim=1)
        preds.append(best.cpu().numpy())
        correct.append((best == target).cpu().numpy())
        margin.append((right - others).cpu().numpy())
        nll.append(-right.double().cpu().numpy())
        pieces = [model.decode([t]) for t in s]
        for j in range(1, len(s)):  # the text before token j, and the token itself
            before = "".join(pieces[max(0, j - 24):j])[-_CONTEXT_CHARS:]
            prompts.append(f"…{before}⟨{pieces[j]}⟩")
    pred = np.concatenate(preds).astype(np.int64)
    ppl = float(np.exp(np.concatenate(nll).mean()))
    return TaskOutcome(task.key, pred, np.concatenate(correct), np.concatenate(margin).astype(np.float32),
                       tuple(prompts), tuple(model.decode([int(t)]) for t in pred), ppl)


def evaluate_lm(model, tasks: Sequence[Task], reference: Evaluation | None = None,
                reference_model=None) -> Evaluation:
    """Score a causal LM with `.hidden`, `.embed`, `.encode_text`, `.decode` on LM tasks.

    reference_model: the unquantized model; when given, the KL divergence of next-token distributions on the
    text tasks' tokens is the whole-model metric (its forward passes are rerun here, not stored: 49,152
    log-probabilities per token would not fit a cache). `reference` is accepted for a uniform signature.
    """
    bad = [t.key for t in tasks if t.kind not in (Kind.LM_CHOICE, Kind.LM_TEXT)]
    if bad:
        raise ValueError(f"tasks {bad} are not LM tasks; allowed kinds: lm_choice, lm_text")
    start = time.perf_counter()
    outcomes, kl, agree = {}, [], []
    for t in tasks:
        if t.kind is Kind.LM_CHOICE:
            outcomes[t.key] = _choice_outcome(model, t)
            continue
        seqs, lps = _text_logprobs(model, t)
        outcomes[t.key] = _text_outcome(model, t, seqs, lps)
        if reference_model is not None:
            _, ref = _text_logprobs(reference_model, t)
            for p, q in zip(ref, lps):
                kl.append((p.exp() * (p - q)).sum(dim=1).clamp_min(0).double().cpu().numpy())
                agree.append((p.argmax(1) == q.argmax(1)).cpu().numpy())
    whole = None
    if reference_model is not None and kl:
        whole = WholeModel("next-token KL divergence vs unquantized", "nats per token",
                           np.concatenate(kl).astype(np.float32), higher_is_better=False,
                           extras=MappingProxyType({"top-1 agreement": float(np.concatenate(agree).mean())}))
    return Evaluation(MappingProxyType(outcomes), whole, None, time.perf_counter() - start)
