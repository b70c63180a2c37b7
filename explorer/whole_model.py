"""Quantize every Linear of a real model (MiniLM, SmolLM2) with a `Scheme`, calibrated on the project's own
calibration text (explorer/data/calibration.txt).

Calibration is sequential, block by block, as in GPTQ's reference (IST-DASLab/gptq `opt.py`, arXiv 2210.17323)
and llm-awq (arXiv 2306.00978): the inputs of block i are captured with a forward pre-hook on block 0 and then
pushed through blocks 0..i-1 *already quantized*, so each block is calibrated on what it will really see.
Inside a block, forward hooks on the first Linear of each input group (registry.InputGroup: q/k/v read one
input) collect its inputs: streamed into a HessianAccumulator for GPTQ, kept as X [tokens, in] for AWQ (only
this block's, never all layers' at once). RTN needs no calibration and skips the forward passes.

The shared base model is never touched: hooks go on module-tree copies that share its tensors
(`explorer.models.swap.with_weights`), and the result is `with_weights(base, {name: Ŵ})`.
AWQ here folds its scale back into Ŵ = Q(W diag(s)) diag(s)^-1 (a drop-in weight); for the GELU-fed
`output.dense` of MiniLM no exact fold into the producer exists (registry Fold.NONE), a deployment would need
one extra per-channel multiply there.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable, Sequence

import torch
from torch import nn

from explorer.data import calibration_passages
from explorer.methods import HessianAccumulator, Method, awq_search_group, gptq_quantize, hessian_from
from explorer.models import registry
from explorer.models.swap import with_weights
from explorer.quantize import fake_quantize
from explorer.scheme import Scheme, layer_bits, linear_shapes
from explorer.specs import QuantSpec, ScaleEncoding

Progress = Callable[[float, str], None]
MAX_PASSAGE_TOKENS = 256  # per calibration passage (MiniLM truncates there too)


def _run_minilm(model: nn.Module, texts: list[str]) -> tuple[Callable[[], object], torch.Tensor]:
    ids, mask = model.tokenize(texts)
    return (lambda: model(ids, mask)), mask.bool()


def _run_smollm2(model: nn.Module, texts: list[str]) -> tuple[Callable[[], object], torch.Tensor]:
    seqs = [model.encode_text(t)[:MAX_PASSAGE_TOKENS] for t in texts]
    width = max(len(q) for q in seqs)
    dev = model.embed.weight.device
    # right padding with token 0: causal attention keeps every real token blind to the padding after it
    ids = torch.tensor([q + [0] * (width - len(q)) for q in seqs], dtype=torch.long, device=dev)
    mask = torch.arange(width, device=dev)[None, :] < torch.tensor([len(q) for q in seqs], device=dev)[:, None]
    return (lambda: model.hidden(ids)), mask


# model key -> (the forward pass over a batch of calibration passages, which [B, T] positions are real tokens);
# padding never enters the statistics
CALIBRATION_RUNNERS = MappingProxyType({"minilm": _run_minilm, "smollm2": _run_smollm2})
CALIBRATION_BATCH = 16  # passages per forward, grouped by length so little is padding
HESSIAN_FLUSH = 2048  # tokens buffered before one Hessian update (fewer, larger matmuls)


@dataclass(frozen=True, eq=False)
class LayerQuant:
    """What happened to one Linear: its spec (None: kept in fp16), method, stored bits, seconds."""

    name: str
    spec: QuantSpec | None
    method: Method
    bits: int
    seconds: float


@dataclass(frozen=True, eq=False)
class QuantizedModel:
    """A quantized copy of the base model (sharing every untouched tensor) and its accounting."""

    model: nn.Module
    scheme: Scheme
    bits_per_weight: float
    n_weights: int
    layers: tuple[LayerQuant, ...]
    calibration_tokens: int
    seconds: float


class _Collector:
    """A forward hook on a Linear: keeps the inputs of real tokens (`mask` is set before each batch), streamed
    into a HessianAccumulator every HESSIAN_FLUSH tokens (GPTQ) or kept as X for AWQ kinds."""

    def __init__(self, in_features: int, keep_x: bool) -> None:
        self.keep_x = keep_x
        self.parts: list[torch.Tensor] = []
        self.buffered = 0
        self.hessian = None if keep_x else HessianAccumulator(in_features)
        self.mask: torch.Tensor | None = None

    def __call__(self, _module, args, _output) -> None:
        x = args[0].detach()[self.mask]  # [B, T, in] -> [real tokens, in]
        self.parts.append(x)
        self.buffered += x.shape[0]
        if not self.keep_x and self.buffered >= HESSIAN_FLUSH:
            self._flush()

    def _flush(self) -> None:
        if self.parts:
            self.hessian.add(torch.cat(self.parts))
        self.parts, self.buffered = [], 0

    def result(self):
        """X [tokens, in] float32 (AWQ kinds), or the HessianAccumulator (GPTQ)."""
        if self.keep_x:
            return torch.cat(self.parts).float()
        self._flush()
        return self.hessian


class _Stop(Exception):
    """Raised by the block-0 pre-hook: the rest of the forward pass is not needed."""


def _block(model: nn.Module, key: str, i: int) -> nn.Module:
    return model.get_submodule(registry.model_info(key).block_prefix.format(i=i).rstrip("."))


def _block_inputs(base: nn.Module, key: str, texts: Sequence[str]) -> list[tuple[tuple, torch.Tensor]]:
    """For each batch of passages: (the positional arguments block 0 receives, the [B, T] real-token mask)."""
    copy = with_weights(base, {})
    captured: list[tuple] = []

    def grab(_module, args):
        captured.append(tuple(a.detach() if isinstance(a, torch.Tensor) else a for a in args))
        raise _Stop

    order = sorted(texts, key=len)
    masks = []
    handle = _block(copy, key, 0).register_forward_pre_hook(grab)
    try:
        with torch.no_grad():
            for start in range(0, len(order), CALIBRATION_BATCH):
                forward, mask = CALIBRATION_RUNNERS[key](copy, order[start:start + CALIBRATION_BATCH])
                masks.append(mask)
                try:
                    forward()
                except _Stop:
                    pass
    finally:
        handle.remove()
    return list(zip(captured, masks))


def _static_groups(spec: QuantSpec) -> bool:
    # NVFP4's FP32 tensor scale is set once from the whole matrix: GPTQ needs static groups for it
    return spec.format.scale_encoding is ScaleEncoding.E4M3


def _quantize_group(method: Method, weights: list[tuple[str, torch.Tensor]], spec: QuantSpec | None,
                    stats) -> dict[str, torch.Tensor]:
    """Ŵ for Linears sharing one input. stats: X [tokens, in] (AWQ kinds), a HessianAccumulator (GPTQ), None."""
    if spec is None:  # kept: rounded to fp16, what a deployment would store
        return {n: w.to(torch.float16).to(w.dtype) for n, w in weights}
    if method is Method.RTN:
        return {n: fake_quantize(w, spec) for n, w in weights}
    if method is Method.GPTQ:
        return {n: gptq_quantize(w, stats, spec, static_groups=_static_groups(spec)).w_hat for n, w in weights}
    awq = awq_search_group(weights, stats, spec)
    if method is Method.AWQ:
        return {layer.name: layer.w_hat for layer in awq.layers}
    s = awq.scales  # AWQ+GPTQ: AWQ's scales, then GPTQ on W diag(s) with X diag(s)^-1, folded back
    h = hessian_from(stats.float() / s)
    out = {}
    for n, w in weights:
        g = gptq_quantize(w.float() * s, h, spec, static_groups=_static_groups(spec))
        out[n] = (g.w_hat.float() / s).to(w.dtype)
    return out


def _needs_calibration(scheme: Scheme, names: Sequence[str]) -> bool:
    return scheme.method is not Method.RTN and any(scheme.spec_for(n) is not None for n in names)


def quantized_weights(key: str, base: nn.Module, scheme: Scheme, *, only: Sequence[str] | None = None,
                      propagate: bool = True, texts: Sequence[str] | None = None,
                      on_progress: Progress | None = None) -> tuple[dict[str, torch.Tensor], list[LayerQuant], int]:
    """Ŵ for every Linear (or those in `only`), with the per-layer record and the calibration token count.

    propagate=True: block i is calibrated on the outputs of the already quantized blocks before it (the
    whole-model setting); False: every block sees the unquantized model's activations (exactly what a layer
    quantized alone sees, the per-layer sensitivity setting). `texts`: calibration passages (default: the
    project's calibration text).
    """
    info = registry.model_info(key)
    names = registry.linear_names(key)
    scheme.check_names(names)
    wanted = set(names if only is None else only)
    if not wanted <= set(names):
        raise ValueError(f"only= names unknown Linears {sorted(wanted - set(names))[:5]}")
    report = on_progress or (lambda f, m: None)
    weights: dict[str, torch.Tensor] = {}
    layers: list[LayerQuant] = []
    calibrate = _needs_calibration(scheme, [n for n in names if n in wanted])
    inputs = _block_inputs(base, key, list(texts) if texts is not None else calibration_passages()) \
        if calibrate else []
    tokens = sum(int(mask.sum()) for _, mask in inputs)
    for b in range(info.n_blocks):
        report(b / info.n_blocks, f"block {b + 1}/{info.n_blocks}")
        block = with_weights(_block(base, key, b), {})  # hooks go on this copy, never on the shared model
        prefix = info.block_prefix.format(i=b)
        groups = [g for g in registry.block_groups(key, b) if any(n in wanted for n in g.linears)]
        stats, handles = {}, []
        for g in groups:
            if calibrate and _needs_calibration(scheme, [n for n in g.linears if n in wanted]):
                lin = block.get_submodule(g.linears[0][len(prefix):])
                stats[g.input_key] = _Collector(lin.in_features, keep_x=scheme.method is not Method.GPTQ)
                handles.append(lin.register_forward_hook(stats[g.input_key]))
        fp_out = None
        if handles:
            fp_out = []
            with torch.no_grad():
                for args, mask in inputs:
                    for c in stats.values():
                        c.mask = mask
                    fp_out.append(block(*args))
            for h in handles:
                h.remove()
        new = {}
        for g in groups:
            st = stats[g.input_key].result() if g.input_key in stats else None
            todo = [n for n in g.linears if n in wanted]
            by_spec: dict[QuantSpec | None, list[str]] = {}
            for n in todo:  # overrides can give Linears of one group different specs
                by_spec.setdefault(scheme.spec_for(n), []).append(n)
            for spec, part in by_spec.items():
                start = time.perf_counter()
                ws = [(n, base.get_submodule(n).weight) for n in part]
                out = _quantize_group(scheme.method, ws, spec, st)
                sec = (time.perf_counter() - start) / len(part)
                for n, w in ws:
                    new[n] = out[n]
                    layers.append(LayerQuant(n, spec, scheme.method, layer_bits(spec, tuple(w.shape)), sec))
        weights.update(new)
        if calibrate and b + 1 < info.n_blocks:
            if propagate:
                qblock = with_weights(block, {n[len(prefix):]: w for n, w in new.items()})
                with torch.no_grad():
                    outs = [qblock(*args) for args, _ in inputs]
            else:
                with torch.no_grad():
                    outs = fp_out if fp_out is not None else [block(*args) for args, _ in inputs]
            inputs = [((o,) + tuple(args[1:]), mask) for o, (args, mask) in zip(outs, inputs)]
    report(1.0, "done")
    return weights, layers, tokens


def quantize_model(key: str, scheme: Scheme, base: nn.Module | None = None, *,
                   texts: Sequence[str] | None = None, on_progress: Progress | None = None) -> QuantizedModel:
    """Quantize every Linear of model `key` ("minilm" or "smollm2") with `scheme`.

    base: the loaded unquantized model (loaded here when None); it is never modified. Returns the quantized copy
    and the effective bits per Linear weight of the whole model (codes + scales + zero points; fp16 layers 16).
    """
    if not isinstance(scheme, Scheme):
        raise ValueError(f"scheme must be a Scheme, got {type(scheme).__name__}")
    registry.model_info(key)
    if base is None:
        base = load_model(key)
    start = time.perf_counter()
    weights, layers, tokens = quantized_weights(key, base, scheme, texts=texts, on_progress=on_progress)
    shapes = linear_shapes(base, weights)
    n = sum(a * b for a, b in shapes.values())
    bits = sum(layer.bits for layer in layers) / n
    return QuantizedModel(with_weights(base, weights), scheme, bits, n, tuple(layers), tokens,
                          time.perf_counter() - start)


def _load_minilm(device):
    from explorer.models.minilm import load_minilm
    return load_minilm(device)


def _load_smollm2(device):
    from explorer.models.smollm2 import load_smollm2
    return load_smollm2(device)


LOADERS = MappingProxyType({"minilm": _load_minilm, "smollm2": _load_smollm2})


def load_model(key: str, device: torch.device | str | None = None) -> nn.Module:
    """Load model `key` on `device` (FileNotFoundError when its package is missing)."""
    registry.model_info(key)
    return LOADERS[key](device)
