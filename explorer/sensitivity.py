"""Per-layer sensitivity: quantize ONE Linear at a time (every other layer unquantized), measure how far the model
moves on a fixed probe, rank the layers by that damage, and suggest a mixed-precision plan that keeps the worst k
at 8-bit (the idea behind llama.cpp's per-tensor type overrides and HAWQ-style sensitivity, Dong et al. 2019,
arXiv:1905.03696, measured here directly instead of through Hessian traces).

Probes are data (`PROBES`, by model key): MiniLM: 1 - cosine between the layer-quantized and unquantized
embeddings of a fixed, evenly strided subset of the task sentences; SmolLM2: mean next-token KL divergence on
the first tokens of the held-out prose and code. With AWQ/GPTQ each layer is calibrated on the unquantized
model's activations (`quantized_weights(..., propagate=False)`): exactly what a layer quantized alone sees.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from explorer.formats import make_spec
from explorer.models import registry
from explorer.models.swap import with_weights
from explorer.scheme import Scheme, linear_shapes, scheme_bits_per_weight
from explorer.specs import QuantSpec
from explorer.tasks import Task
from explorer.tasks.lm_texts import CODE, PROSE
from explorer.tasks.score_embed import task_sentences
from explorer.whole_model import quantized_weights

Progress = Callable[[float, str], None]
EIGHT_BIT = make_spec("int8", "channel")  # what the plan keeps the worst layers at


class EmbedProbe:
    """1 - cos(embedding, unquantized embedding) over `n` task sentences (every len/n-th one)."""

    label = "mean embedding cosine drop (1 - cos) on probe sentences"

    def __init__(self, base: nn.Module, tasks: Sequence[Task], n: int = 96) -> None:
        sentences = task_sentences(tasks)
        step = max(1, len(sentences) // n)
        self.sentences = list(sentences[::step][:n])
        self.reference = base.encode(self.sentences)

    def damage(self, model: nn.Module) -> np.ndarray:
        """Per-sentence damage [n] float64."""
        e = model.encode(self.sentences)
        return (1.0 - (e * self.reference).sum(dim=1)).double().cpu().numpy()


class LMProbe:
    """KL(P_unquantized || P_layer-quantized) per token over the first `n` tokens of held-out prose and code."""

    label = "mean next-token KL divergence on probe text"

    def __init__(self, base: nn.Module, tasks: Sequence[Task], n: int = 128) -> None:
        dev = base.embed.weight.device
        ids = [base.encode_text(t)[:n // 2] for t in (PROSE[0], CODE[0])]
        width = max(len(i) for i in ids)
        self.ids = torch.tensor([i + [0] * (width - len(i)) for i in ids], dtype=torch.long, device=dev)
        self.mask = torch.tensor([[j < len(i) for j in range(width)] for i in ids], device=dev)
        self.reference = self._logp(base)

    def _logp(self, model: nn.Module) -> torch.Tensor:
        with torch.no_grad():
            h = model.hidden(self.ids)[self.mask]
            return (h.float() @ model.embed.weight.float().T).log_softmax(-1)

    def damage(self, model: nn.Module) -> np.ndarray:
        q = self._logp(model)
        p = self.reference
        return (p.exp() * (p - q)).sum(dim=1).clamp_min(0).double().cpu().numpy()


PROBES = MappingProxyType({"minilm": EmbedProbe, "smollm2": LMProbe})


@dataclass(frozen=True)
class LayerDamage:
    """One Linear quantized alone: mean and worst probe damage, its weights, and its bits under the scheme."""

    name: str
    damage: float
    worst: float
    numel: int


@dataclass(frozen=True, eq=False)
class Sensitivity:
    """Layers ranked by damage (worst first) for one scheme on one model."""

    model: str
    scheme: Scheme
    probe: str
    layers: tuple[LayerDamage, ...]
    seconds: float

    def ranking(self) -> list[str]:
        return [layer.name for layer in self.layers]


def layer_sensitivity(key: str, scheme: Scheme, base: nn.Module, tasks: Sequence[Task], *,
                      names: Sequence[str] | None = None, probe_size: int | None = None,
                      on_progress: Progress | None = None) -> Sensitivity:
    """Quantize each Linear (or each of `names`) alone with `scheme` (overrides ignored) and rank by damage."""
    if not isinstance(scheme, Scheme):
        raise ValueError(f"scheme must be a Scheme, got {type(scheme).__name__}")
    report = on_progress or (lambda f, m: None)
    start = time.perf_counter()
    names = list(names) if names is not None else registry.linear_names(key)
    plain = Scheme(scheme.spec, scheme.method)
    report(0.0, "preparing the probe")
    probe_cls = PROBES[key]
    probe = probe_cls(base, tasks) if probe_size is None else probe_cls(base, tasks, probe_size)
    weights, _, _ = quantized_weights(key, base, plain, only=names, propagate=False,
                                      on_progress=lambda f, m: report(0.2 * f, f"quantizing: {m}"))
    rows = []
    for i, n in enumerate(names):
        report(0.2 + 0.8 * i / len(names), f"layer {i + 1}/{len(names)}: {n}")
        d = probe.damage(with_weights(base, {n: weights[n]}))
        rows.append(LayerDamage(n, float(d.mean()), float(d.max()), base.get_submodule(n).weight.numel()))
    report(1.0, "done")
    rows.sort(key=lambda r: (-r.damage, r.name))
    return Sensitivity(key, plain, probe_cls.label, tuple(rows), time.perf_counter() - start)


@dataclass(frozen=True, eq=False)
class Plan:
    """The scheme with the worst k layers kept at `keep`, and the bits-per-weight cost of doing so."""

    scheme: Scheme
    kept: tuple[str, ...]
    bits_before: float
    bits_after: float


def mixed_precision_plan(sens: Sensitivity, k: int, base: nn.Module, keep: QuantSpec = EIGHT_BIT) -> Plan:
    """Keep the k most damaging layers of `sens` at `keep` (default INT8 per-channel); the rest as the scheme."""
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= len(sens.layers):
        raise ValueError(f"k={k!r} is not allowed; choose an integer 0..{len(sens.layers)}")
    kept = tuple(sens.ranking()[:k])
    s = sens.scheme
    name = f"{s.label} + worst {k} at {keep.label}" if k else s.label
    plan = s.with_overrides(kept, keep, name=name)
    shapes = linear_shapes(base, registry.linear_names(sens.model))
    return Plan(plan, kept, scheme_bits_per_weight(s, shapes), scheme_bits_per_weight(plan, shapes))
