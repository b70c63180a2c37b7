"""List and load tensors from safetensors files, Hugging Face model folders and in-memory uploads.

Listing reads only headers (for sharded folders: the index plus each shard's header); loading
reads exactly one tensor's bytes. The format is parsed here (see `safetensors_header`) rather
than through the `safetensors` package so hostile files are validated field by field. Pickle
checkpoints are refused: unpickling can run arbitrary code. `TensorInfo` says whether a tensor
is a 2-D float weight this app can quantize, and why not otherwise.
"""
from __future__ import annotations

import difflib
import io
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Union

import torch

from .safetensors_header import (
    DTYPES, MAX_HEADER_BYTES, MAX_PARSE_COST, Header, SafetensorsError, TensorEntry, display_name,
    header_length, parse_cost, parse_header, read_header,
)

__all__ = [
    "SafetensorsError", "Header", "TensorInfo", "read_header", "block_of", "list_tensors",
    "list_tensors_from_bytes", "load_tensor", "load_tensor_from_bytes",
]

INDEX_NAME = "model.safetensors.index.json"
PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".ckpt", ".pkl"})

# Name components left by GPTQ/AWQ, bitsandbytes and compressed-tensors checkpoints: such tensors
# are already quantized (codes, scales, zero points, quantization state), not weights to quantize.
QUANTIZED_NAME_MARKERS: dict[str, str] = {
    "qweight": "GPTQ/AWQ packed weight codes", "qzeros": "GPTQ/AWQ packed zero points",
    "scales": "GPTQ/AWQ scales", "g_idx": "GPTQ group index",
    "absmax": "bitsandbytes 4-bit absmax", "nested_absmax": "bitsandbytes nested absmax",
    "quant_map": "bitsandbytes 4-bit code map", "nested_quant_map": "bitsandbytes nested code map",
    "weight_format": "bitsandbytes 8-bit layout tag", "SCB": "bitsandbytes 8-bit row scales",
    "weight_scale": "compressed-tensors weight scale", "weight_zero_point": "compressed-tensors zero point",
    "weight_packed": "compressed-tensors packed weight codes",
}

Source = Union[bytes, bytearray, memoryview, BinaryIO]
_NOT_0_OR_1 = re.compile(rb"[^\x00\x01]")


@dataclass(frozen=True)
class TensorInfo:
    """What a picker needs about one tensor; begin/end are absolute byte offsets in the file."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    nbytes: int
    source: str
    begin: int
    end: int
    quantizable: bool
    reason: str

    @property
    def block(self) -> str:
        return block_of(self.name)


def _not_quantizable_reason(name: str, dtype: str, shape: tuple[int, ...]) -> str:
    """'' for a 2-D non-empty float tensor; otherwise a plain-words reason."""
    for part in name.split("."):
        if part in QUANTIZED_NAME_MARKERS or part.startswith("quant_state"):
            what = QUANTIZED_NAME_MARKERS.get(part, "bitsandbytes quantization state")
            return f"'{part}' is {what}: this checkpoint is already quantized"
    if dtype == "BOOL":
        return "BOOL tensor: a mask, not a weight matrix"
    if not DTYPES[dtype].is_float:
        return f"integer dtype {dtype}: looks already quantized (packed codes) or is an index/id buffer"
    if 0 in shape:
        return "empty tensor"
    if len(shape) == 0:
        return "0-D scalar: nothing to quantize"
    if len(shape) == 1:
        return "1-D tensor (bias or norm): quantization here applies to 2-D weight matrices"
    if len(shape) > 2:
        return f"{len(shape)}-D tensor: reshape to [out, in] first"
    return ""


def _info(entry: TensorEntry, header: Header, source: str) -> TensorInfo:
    reason = _not_quantizable_reason(entry.name, entry.dtype, entry.shape)
    return TensorInfo(entry.name, entry.shape, entry.dtype, entry.nbytes, source,
                      header.data_start + entry.begin, header.data_start + entry.end,
                      quantizable=not reason, reason=reason)


def block_of(name: str) -> str:
    """Group key for a tensor name: the prefix up to the first numeric component
    ('encoder.layer.3', 'model.layers.11', 'blocks.11', 'blk.11', 'transformer.h.0'),
    else the top-level prefix ('embeddings', 'lm_head')."""
    parts = name.split(".")
    for i, part in enumerate(parts):
        if part.isdigit():
            return ".".join(parts[: i + 1])
    return parts[0]


def _natural_key(name: str) -> list:
    # 'layer.2' before 'layer.10', as a reader expects in a picker.
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", name)]


def _refuse_suffix(name: str) -> None:
    suffix = Path(name).suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        raise SafetensorsError(
            f"'{name}' is a pickle checkpoint ({suffix}): loading pickle files can run arbitrary code, "
            f"so they are refused here. Convert it to .safetensors in a trusted environment first.")


def _file_header(path: Path) -> Header:
    try:
        with open(path, "rb") as f:
            return read_header(f, path.stat().st_size)
    except SafetensorsError as e:
        raise SafetensorsError(f"{path.name}: {e}") from None


def _read_index(folder: Path, index_path: Path) -> dict[str, str]:
    """weight_map of a validated index: tensor name -> shard file name inside `folder`."""
    if index_path.stat().st_size > MAX_HEADER_BYTES:
        raise SafetensorsError(f"{index_path.name}: larger than {MAX_HEADER_BYTES // 2**20} MiB")
    with open(index_path, "rb") as f:
        raw = f.read()
    if parse_cost(raw) > MAX_PARSE_COST:
        raise SafetensorsError(f"{index_path.name}: too complex to parse safely (see safetensors_header.parse_cost)")
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise SafetensorsError(f"{index_path.name}: not valid UTF-8 JSON ({str(e)[:200]})") from None
    wmap = obj.get("weight_map") if isinstance(obj, dict) else None
    if not isinstance(wmap, dict):
        raise SafetensorsError(f"{index_path.name}: expected a JSON object with a 'weight_map' object")
    for name, shard in wmap.items():
        if not isinstance(shard, str):
            raise SafetensorsError(f"{index_path.name}: shard of '{name}' must be a file name string")
        if not shard or "/" in shard or "\\" in shard or ".." in shard or Path(shard).is_absolute():
            raise SafetensorsError(
                f"{index_path.name}: shard name {shard!r} for '{name}' must be a plain file name "
                f"inside the folder (no '/', '\\' or '..')")
        _refuse_suffix(shard)
        if not (folder / shard).is_file():
            raise SafetensorsError(f"{index_path.name}: shard '{shard}' (holding '{name}') is missing")
    return wmap


def _folder_plan(folder: Path) -> dict[str, list[str] | None]:
    """Shard file name -> the tensor names to take from it (None: all of its tensors)."""
    index_path = folder / INDEX_NAME
    if index_path.is_file():
        plan: dict[str, list[str] | None] = {}
        for name, shard in _read_index(folder, index_path).items():
            plan.setdefault(shard, []).append(name)
        return dict(sorted(plan.items()))
    files = sorted(p.name for p in folder.glob("*.safetensors") if p.is_file())
    if not files:
        pickles = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
        if pickles:
            _refuse_suffix(pickles[0])
        raise SafetensorsError(f"folder '{folder}' holds no .safetensors files")
    return {f: None for f in files}


def _resolve(path: str | Path) -> tuple[Path, dict[str, list[str] | None]]:
    """(folder, plan) for a file or folder path; validates suffixes and existence."""
    p = Path(path)
    if not p.exists():
        raise SafetensorsError(f"path '{p}' does not exist")
    if p.is_dir():
        return p, _folder_plan(p)
    _refuse_suffix(p.name)
    if p.name.endswith(".safetensors.index.json"):
        return p.parent, _folder_plan(p.parent)
    if p.suffix.lower() != ".safetensors":
        raise SafetensorsError(
            f"unsupported file type '{p.suffix or p.name}': expected a .safetensors file "
            f"or a Hugging Face model folder")
    return p.parent, {p.name: None}


def _shard_infos(folder: Path, shard: str, names: list[str] | None) -> list[TensorInfo]:
    header = _file_header(folder / shard)
    if names is None:
        names = list(header.tensors)
    for name in names:
        if name not in header.tensors:
            raise SafetensorsError(f"index lists '{name}' in '{shard}', but that shard's header has no such tensor")
    return [_info(header.tensors[n], header, str(folder / shard)) for n in names]


def list_tensors(path: str | Path) -> list[TensorInfo]:
    """All tensors of a .safetensors file or model folder, in natural name order; reads headers only."""
    folder, plan = _resolve(path)
    seen: dict[str, str] = {}
    infos: list[TensorInfo] = []
    for shard, names in plan.items():
        for info in _shard_infos(folder, shard, names):
            if info.name in seen:
                raise SafetensorsError(f"tensor '{info.name}' appears in both '{seen[info.name]}' and '{shard}'")
            seen[info.name] = shard
            infos.append(info)
    return sorted(infos, key=lambda i: _natural_key(i.name))


def _unknown_name(name: str, known: list[str], where: str) -> SafetensorsError:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return SafetensorsError(f"no tensor named '{name}' in {where}{hint}")


def _to_tensor(buf: bytearray, entry: TensorEntry, device: torch.device | str | None) -> torch.Tensor:
    """Tensor of `entry` over `buf` (its exact bytes, now owned by the tensor)."""
    if sys.byteorder != "little":
        raise SafetensorsError("safetensors data is little-endian; this loader needs a little-endian machine")
    spec = DTYPES[entry.dtype]
    if entry.nbytes == 0:
        t = torch.empty(entry.shape, dtype=spec.torch_dtype)  # frombuffer refuses empty buffers
    else:
        if entry.dtype == "BOOL" and _NOT_0_OR_1.search(buf):  # a C-speed scan, no copy
            raise SafetensorsError(f"tensor {display_name(entry.name)}: BOOL data holds bytes other than 0 and 1")
        t = torch.frombuffer(buf, dtype=spec.torch_dtype).reshape(entry.shape)
    return t if device is None else t.to(device)


def load_tensor(path: str | Path, name: str, device: torch.device | str | None = None) -> torch.Tensor:
    """Tensor `name` in its stored dtype, shape as in the header; reads one header and its bytes."""
    folder, plan = _resolve(path)
    shards = [s for s, names in plan.items() if names is None or name in names]
    for shard in shards:
        file = folder / shard
        header = _file_header(file)
        entry = header.tensors.get(name)
        if entry is None:
            continue
        buf = bytearray(entry.nbytes)
        with open(file, "rb") as f:
            f.seek(header.data_start + entry.begin)
            got = f.readinto(buf)
        if got != entry.nbytes:
            raise SafetensorsError(f"{shard}: tensor '{name}' ends past the end of the file: file truncated")
        return _to_tensor(buf, entry, device)
    known = [n for names in plan.values() if names for n in names] or [
        n for s in plan for n in _file_header(folder / s).tensors]
    raise _unknown_name(name, known, str(path))


def _with_view(data: Source, label: str, use):
    """Call use(header, read) on an in-memory upload without copying it whole;
    read(start, n) returns a fresh bytearray of (at most) n bytes from absolute offset start."""
    _refuse_suffix(label)
    if isinstance(data, (bytes, bytearray, memoryview)) or hasattr(data, "getbuffer"):
        view = memoryview(data) if isinstance(data, (bytes, bytearray, memoryview)) else data.getbuffer()
        # Release both views on exit so a BytesIO can be resized afterwards.
        with view, view.cast("B") as mv:
            n = header_length(bytes(mv[:8]), mv.nbytes)
            header = parse_header(bytes(mv[8:8 + n]), mv.nbytes)
            return use(header, lambda start, count: bytearray(mv[start:start + count]))
    if hasattr(data, "read") and hasattr(data, "seek"):
        pos = data.tell()
        try:
            size = data.seek(0, io.SEEK_END)
            header = read_header(data, size)

            def read(start: int, count: int) -> bytearray:
                data.seek(start)
                return bytearray(data.read(count))
            return use(header, read)
        finally:
            data.seek(pos)
    raise TypeError(f"expected bytes, a memoryview or a binary file-like object, got {type(data).__name__}")


def list_tensors_from_bytes(data: Source, label: str) -> list[TensorInfo]:
    """Tensors of an in-memory safetensors file (`label` names it, e.g. the upload's file name)."""
    def use(header: Header, read) -> list[TensorInfo]:
        infos = [_info(e, header, label) for e in header.tensors.values()]
        return sorted(infos, key=lambda i: _natural_key(i.name))
    try:
        return _with_view(data, label, use)
    except SafetensorsError as e:
        raise SafetensorsError(f"{label}: {e}") from None


def load_tensor_from_bytes(data: Source, name: str, device: torch.device | str | None = None) -> torch.Tensor:
    """Tensor `name` from an in-memory safetensors file, copying only its bytes."""
    def use(header: Header, read) -> torch.Tensor:
        entry = header.tensors.get(name)
        if entry is None:
            raise _unknown_name(name, list(header.tensors), "the uploaded file")
        buf = read(header.data_start + entry.begin, entry.nbytes)
        if len(buf) != entry.nbytes:
            raise SafetensorsError(f"tensor '{name}' ends past the end of the upload: file truncated")
        return _to_tensor(buf, entry, device)
    return _with_view(data, "", use)
