"""The bundled sample weights (`sample_weights/`, built by scripts/build_samples.py): real Linear weights of a few
blocks, their real inputs on the project's calibration text (512 tokens each), and per-input-channel activation
statistics (mean|x|, max|x|) of every Linear, described by `sample_weights/manifest.json`.

Everything is read lazily with safetensors' `safe_open` (no pickle). Names are checked against the manifest and
unknown ones raise ValueError listing the allowed set.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from safetensors import safe_open

SAMPLE_DIR: Path = Path(__file__).resolve().parent.parent / "sample_weights"
MANIFEST = "manifest.json"
_FILES = ("weights.safetensors", "inputs.safetensors", "activation_stats.safetensors")


@dataclass(frozen=True)
class SampledLinear:
    """One Linear whose weight ships in the sample. weight shape [out_features, in_features]."""

    name: str
    weight: str  # tensor name in weights.safetensors
    bias: str | None
    out_features: int
    in_features: int
    input_key: str  # tensor name in inputs.safetensors (shared by Linears that read the same input)
    tokens: int


@lru_cache(maxsize=4)
def _read_manifest(path: Path, mtime_ns: int) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _manifest() -> dict:
    """The cached parse (shared: never mutate it)."""
    path = SAMPLE_DIR / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; run `python scripts/build_samples.py`")
    return _read_manifest(path, path.stat().st_mtime_ns)


def manifest() -> dict:
    """A copy of the parsed manifest; FileNotFoundError when the samples were never built."""
    return copy.deepcopy(_manifest())


def sample_models() -> list[str]:
    """Models present in the sample, e.g. ['minilm', 'smollm2'] (smollm2 only when it was built)."""
    return [m for m in _manifest()["models"] if (SAMPLE_DIR / m).is_dir()]


def _model(model: str) -> dict:
    allowed = sample_models()
    if model not in allowed:
        raise ValueError(f"unknown sample model {model!r}; allowed: {allowed}")
    return _manifest()["models"][model]


def weights_path(model: str) -> Path:
    """Path of `<model>/weights.safetensors`."""
    _model(model)
    return SAMPLE_DIR / model / "weights.safetensors"


def sampled_linears(model: str) -> dict[str, SampledLinear]:
    """The sampled Linears of `model`, keyed by Linear name, in forward order."""
    return {n: SampledLinear(name=n, **v) for n, v in _linears(model).items()}


def _linears(model: str) -> dict[str, dict]:
    fields = ("weight", "bias", "out_features", "in_features", "input_key", "tokens")
    return {n: {f: v[f] for f in fields} for n, v in _model(model)["linears"].items()}


def linear_names(model: str) -> dict[str, str]:
    """Sampled Linear name -> its weight tensor name, e.g. 'blocks.11.down' -> 'blocks.11.down.weight'."""
    return {n: v["weight"] for n, v in _linears(model).items()}


def _resolve_linear(model: str, name: str) -> str:
    """Linear name for a Linear name or a weight/bias tensor name."""
    lin = _linears(model)
    if name in lin:
        return name
    for n, v in lin.items():
        if name in (v["weight"], v["bias"]):
            return n
    raise ValueError(f"unknown Linear or tensor {name!r} for {model!r}; allowed: {sorted(lin)}")


def _tensor(model: str, file: str, key: str) -> torch.Tensor:
    with safe_open(SAMPLE_DIR / model / file, framework="pt") as f:
        return f.get_tensor(key)


def load_weight(model: str, tensor_name: str) -> torch.Tensor:
    """A stored tensor (float16) by tensor name (`....weight` / `....bias`); a bare Linear name means its weight."""
    lin = _resolve_linear(model, tensor_name)
    entry = _linears(model)[lin]
    key = entry["weight"] if tensor_name == lin else tensor_name
    return _tensor(model, "weights.safetensors", key)


def load_inputs(model: str, linear_or_weight_name: str) -> torch.Tensor:
    """Real inputs of a sampled Linear: [tokens, in_features] float16 (shared inputs are stored once)."""
    lin = _resolve_linear(model, linear_or_weight_name)
    return _tensor(model, "inputs.safetensors", _linears(model)[lin]["input_key"])


def token_positions(model: str) -> torch.Tensor:
    """[tokens] int32: position inside its calibration passage of each sampled input row (0 = first token)."""
    return _tensor(model, "inputs.safetensors", "token_position")


def activation_stats(model: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Every Linear of the model -> (mean|x| [in], max|x| [in]) float32 per input channel over all calibration
    tokens (count in manifest()['models'][model]['activation_stats']['tokens'])."""
    m = _model(model)
    out: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    with safe_open(SAMPLE_DIR / model / "activation_stats.safetensors", framework="pt") as f:
        keys = list(m["files"][f"{model}/activation_stats.safetensors"]["tensors"])
        for k in keys:
            if k.endswith(".mean_abs"):
                name = k.removesuffix(".mean_abs")
                out[name] = (f.get_tensor(k), f.get_tensor(f"{name}.max_abs"))
    return out


def caveat(model: str) -> str:
    """What a reader must know about this sample (for SmolLM2: re-quantizing an already Q4_1 model)."""
    return " ".join(_model(model)["caveats"])


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_manifest() -> list[str]:
    """Problems found (empty list = all good): missing manifest/files, size or sha256 mismatches."""
    try:
        man = _manifest()
    except FileNotFoundError as e:
        return [str(e)]
    files = dict(man.get("files", {}))
    problems = []
    for key, m in man.get("models", {}).items():
        files.update(m.get("files", {}))
        problems += [f"manifest lacks {key}/{f}" for f in _FILES if f"{key}/{f}" not in m.get("files", {})]
    for rel, meta in files.items():
        path = SAMPLE_DIR / rel
        if not path.is_file():
            problems.append(f"missing file {rel}")
        elif path.stat().st_size != meta["size"]:
            problems.append(f"{rel}: size {path.stat().st_size} != manifest {meta['size']}")
        elif _sha256(path) != meta["sha256"]:
            problems.append(f"{rel}: sha256 differs from the manifest")
    return problems
