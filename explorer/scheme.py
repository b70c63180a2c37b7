"""A whole-model quantization scheme as one frozen, hashable value: a format spec x a method (RTN, AWQ, GPTQ,
AWQ+GPTQ) x per-layer overrides (named Linears kept in fp16 or quantized with another spec).

Being frozen and hashable, a Scheme is a cache key for the app and a row label for the sweep. Effective bits per
weight count every Linear weight of the model: element codes, scales and zero points (`explorer.storage`), and 16
bits for a layer kept unquantized (kept layers are rounded to fp16, so the count is exact). Embeddings and norms
are not Linears and stay as loaded.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from torch import nn

from explorer.methods import Method
from explorer.specs import QuantSpec
from explorer.storage import storage

WHOLE_MODEL_METHODS = (Method.RTN, Method.AWQ, Method.GPTQ, Method.AWQ_GPTQ)  # SmoothQuant is W8A8: not here
KEEP_BITS = 16
_METHOD_LABEL = {Method.RTN: "RTN", Method.AWQ: "AWQ", Method.GPTQ: "GPTQ", Method.AWQ_GPTQ: "AWQ+GPTQ"}


def method_label(method: Method) -> str:
    return _METHOD_LABEL[method]


@dataclass(frozen=True)
class Override:
    """Linear `name` (full module name) gets `spec` instead of the scheme's; spec None keeps it in fp16."""

    name: str
    spec: QuantSpec | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"override name must be a non-empty Linear name, got {self.name!r}")
        if self.spec is not None and not isinstance(self.spec, QuantSpec):
            raise ValueError(f"override spec must be a QuantSpec or None (keep in fp16), got {self.spec!r}")

    @property
    def label(self) -> str:
        return "fp16" if self.spec is None else self.spec.label


@dataclass(frozen=True)
class Scheme:
    """Quantize every Linear with `spec` by `method`, except the `overrides`. `name`: a display label (derived
    from the rest when empty). Overrides use the scheme's method with their own spec."""

    spec: QuantSpec
    method: Method = Method.RTN
    overrides: tuple[Override, ...] = ()
    name: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.spec, QuantSpec):
            raise ValueError(f"spec must be a QuantSpec, got {type(self.spec).__name__}")
        allowed = [m.value for m in WHOLE_MODEL_METHODS]
        method = self.method
        if isinstance(method, str) and method in allowed:
            method = Method(method)
        if method not in WHOLE_MODEL_METHODS:
            raise ValueError(f"method={self.method!r} is not allowed for a whole model; choose one of {allowed}")
        object.__setattr__(self, "method", method)
        if not isinstance(self.overrides, tuple) or not all(isinstance(o, Override) for o in self.overrides):
            raise ValueError("overrides must be a tuple of Override")
        names = [o.name for o in self.overrides]
        if len(set(names)) != len(names):
            raise ValueError(f"overrides name a Linear twice: {sorted(n for n in set(names) if names.count(n) > 1)}")
        if not isinstance(self.name, str):
            raise ValueError(f"name must be a str, got {self.name!r}")

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        base = f"{self.spec.label} · {method_label(self.method)}"
        if not self.overrides:
            return base
        kinds = sorted({o.label for o in self.overrides})
        return f"{base} + {len(self.overrides)} layers at {', '.join(kinds)}"

    def spec_for(self, linear: str) -> QuantSpec | None:
        """The spec Linear `linear` gets (None: kept in fp16)."""
        for o in self.overrides:
            if o.name == linear:
                return o.spec
        return self.spec

    def with_overrides(self, names: Iterable[str], spec: QuantSpec | None, name: str = "") -> "Scheme":
        """This scheme with `names` overridden to `spec` (existing overrides of other layers kept)."""
        names = list(names)
        keep = tuple(o for o in self.overrides if o.name not in names)
        return Scheme(self.spec, self.method, keep + tuple(Override(n, spec) for n in names), name)

    def check_names(self, linears: Iterable[str]) -> None:
        """ValueError when an override names a Linear that is not in `linears`."""
        known = set(linears)
        bad = [o.name for o in self.overrides if o.name not in known]
        if bad:
            raise ValueError(f"overrides name unknown Linears {bad}; allowed: {sorted(known)[:6]}... "
                             f"({len(known)} Linears)")


def linear_shapes(model: nn.Module, names: Iterable[str]) -> dict[str, tuple[int, int]]:
    """name -> (out, in) of each named Linear of `model`."""
    return {n: tuple(model.get_submodule(n).weight.shape) for n in names}


def layer_bits(spec: QuantSpec | None, shape: tuple[int, int]) -> int:
    """Total stored bits of one Linear weight [out, in] under `spec` (None: fp16)."""
    if spec is None:
        return KEEP_BITS * shape[0] * shape[1]
    return storage(spec, shape).total_bits


def scheme_bits_per_weight(scheme: Scheme, shapes: dict[str, tuple[int, int]]) -> float:
    """Effective bits per Linear weight of the whole model under `scheme` (scales and zero points included)."""
    total = sum(layer_bits(scheme.spec_for(n), s) for n, s in shapes.items())
    return total / sum(a * b for a, b in shapes.values())
