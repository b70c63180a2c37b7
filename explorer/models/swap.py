"""Swap Linear weights without touching the shared model: the app caches one model instance for all users, so a
quantized variant must be a new module tree that shares every untouched tensor with the original.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def with_weights(model: nn.Module, weights: dict[str, torch.Tensor]) -> nn.Module:
    """A new model that shares every tensor with `model` except the given Linear weights, which are replaced by
    copies of `weights[name]` ([out, in], cast to the model's dtype and device). `model` is never modified.

    Works for any model object whose Linears are reachable with `get_submodule` (MiniLM, SmolLM2)."""
    for name, w in weights.items():
        try:
            lin = model.get_submodule(name)
        except AttributeError:
            lin = None
        if not isinstance(lin, nn.Linear):
            names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
            raise ValueError(f"unknown Linear {name!r}; allowed: {names}")
        if tuple(w.shape) != tuple(lin.weight.shape):
            raise ValueError(f"{name}: weight shape {tuple(w.shape)} != expected {tuple(lin.weight.shape)}")
    # deepcopy the module tree but share parameters, buffers and the tokenizer (memo maps them to themselves)
    memo: dict[int, object] = {id(t): t for t in list(model.parameters()) + list(model.buffers())}
    if hasattr(model, "tokenizer"):
        memo[id(model.tokenizer)] = model.tokenizer
    new = copy.deepcopy(model, memo)
    for name, w in weights.items():
        lin = new.get_submodule(name)
        ref = lin.weight
        lin.weight = nn.Parameter(w.detach().to(ref.device, ref.dtype).clone(), requires_grad=False)
    return new
