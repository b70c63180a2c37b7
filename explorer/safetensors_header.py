"""Parse and validate a safetensors header without touching tensor data.

Format (https://github.com/huggingface/safetensors, README "Format"): an 8-byte little-endian
u64 header length N, then N bytes of UTF-8 JSON, then the data region. The JSON maps each
tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the data
region) plus an optional "__metadata__" object of str -> str. Files may come from anyone, so
every field is checked before a single data byte is read; each defect raises `SafetensorsError`
with a one-line message naming the tensor/field and what was expected (hostile values are shown
shortened, so a message stays one short line). Python's json builds up to ~25 bytes of objects per
header byte, so `parse_cost` bounds that from byte counts and headers over `MAX_PARSE_COST` are
refused before parsing: the memory a header can make the server allocate is bounded.
"""
from __future__ import annotations

import json
import math
import reprlib
import struct
from dataclasses import dataclass
from types import MappingProxyType
from typing import BinaryIO, Mapping

import torch

MAX_HEADER_BYTES = 100 * 1024 * 1024  # same cap as the reference implementation
# Python objects json.loads may build for one header, as bounded by `parse_cost`. Real headers cost ~1-2.5 KB
# per tensor by that bound (a 2,500-tensor SDXL checkpoint: ~6 MB), so 64 MiB admits ~25,000 tensors in one
# file and refuses hostile headers (an 8 MB list of empty lists would build ~180 MB of Python objects).
MAX_PARSE_COST = 64 * 1024 * 1024
MAX_DIMS = 8
MAX_DIM = 2**63 - 1  # torch sizes are int64; an empty tensor's other dims are otherwise unchecked
LENGTH_FIELD_BYTES = 8
METADATA_KEY = "__metadata__"
ENTRY_KEYS = frozenset({"dtype", "shape", "data_offsets"})


class SafetensorsError(ValueError):
    """A safetensors file, folder or index that cannot be read safely."""


@dataclass(frozen=True)
class DtypeSpec:
    """How one safetensors dtype code maps onto torch."""

    torch_dtype: torch.dtype
    itemsize: int
    is_float: bool


# The dtype codes this project reads; others (complex, fnuz fp8, u16..u64) are refused.
DTYPES: Mapping[str, DtypeSpec] = MappingProxyType({
    "F64": DtypeSpec(torch.float64, 8, True),
    "F32": DtypeSpec(torch.float32, 4, True),
    "F16": DtypeSpec(torch.float16, 2, True),
    "BF16": DtypeSpec(torch.bfloat16, 2, True),
    "F8_E4M3": DtypeSpec(torch.float8_e4m3fn, 1, True),
    "F8_E5M2": DtypeSpec(torch.float8_e5m2, 1, True),
    "I64": DtypeSpec(torch.int64, 8, False),
    "I32": DtypeSpec(torch.int32, 4, False),
    "I16": DtypeSpec(torch.int16, 2, False),
    "I8": DtypeSpec(torch.int8, 1, False),
    "U8": DtypeSpec(torch.uint8, 1, False),
    "BOOL": DtypeSpec(torch.bool, 1, False),
})


@dataclass(frozen=True)
class TensorEntry:
    """One validated header entry; begin/end are offsets into the data region."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.begin

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class Header:
    """A validated header: tensors in file (data-offset) order; data_start is 8 + N."""

    header_len: int
    data_start: int
    data_size: int
    metadata: Mapping[str, str]
    tensors: Mapping[str, TensorEntry]


def _short_repr() -> reprlib.Repr:
    r = reprlib.Repr()  # Python 3.11's Repr takes no constructor arguments
    r.maxstring, r.maxother, r.maxlist, r.maxdict, r.maxlevel, r.maxlong = 60, 60, 8, 4, 2, 40
    return r


_SHORT = _short_repr()


def _show(x: object) -> str:
    """A bounded repr of a value from the file, for error messages (at most ~80 characters)."""
    r = _SHORT.repr(x)
    return r if len(r) <= 80 else f"{r[:64]}…{r[-12:]}"


def display_name(name: str) -> str:
    """A name from the file as shown in messages: quoted, one line (control characters escaped), <= ~90 chars."""
    if not name.isprintable():
        return _show(name)
    return f"'{name}'" if len(name) <= 80 else f"'{name[:60]}…{name[-12:]}' ({len(name)} characters)"


def parse_cost(raw: bytes) -> int:
    """An upper bound on the bytes json.loads allocates for the header bytes `raw`.

    Every JSON value after the first in its container follows a ',' or ':', and a string costs two
    quotes, so commas + colons + brackets + quotes/2 + 1 bounds the number of values, keys and
    object pairs; each costs at most ~72 bytes on 64-bit CPython (an empty dict is 64, a pair's
    tuple 56 plus its list slot). The 6 x len term covers the raw copy and the decoded str (up to
    4 bytes per character). Counts include bytes inside strings, so this only ever overestimates.
    """
    structural = (raw.count(b",") + raw.count(b":") + raw.count(b"[") + raw.count(b"{")
                  + raw.count(b'"') // 2 + 1)
    return 80 * structural + 6 * len(raw)


def _is_int(x: object) -> bool:
    # JSON true/false arrive as bool, a subclass of int: not a valid size or offset.
    return isinstance(x, int) and not isinstance(x, bool)


def _looks_like_pickle(prefix: bytes) -> bool:
    # torch.save writes a zip archive ("PK\x03\x04"); legacy pickles start with PROTO 0x80 0x02.
    return prefix.startswith(b"PK\x03\x04") or prefix[:2] == b"\x80\x02"


def header_length(prefix: bytes, file_size: int) -> int:
    """Validate the 8-byte length field (`prefix`, at least 8 bytes) against the file size."""
    if file_size < LENGTH_FIELD_BYTES + 2 or len(prefix) < LENGTH_FIELD_BYTES:
        raise SafetensorsError(
            f"file is {file_size} bytes: too short for a safetensors file "
            f"(8-byte length field plus at least a 2-byte JSON header)")
    (n,) = struct.unpack("<Q", prefix[:LENGTH_FIELD_BYTES])
    hint = (" (the file starts like a PyTorch pickle/zip checkpoint: convert it to safetensors)"
            if _looks_like_pickle(prefix) else "")
    if n < 2:
        raise SafetensorsError(f"header length {n} is too small: the JSON header needs at least 2 bytes")
    if n > MAX_HEADER_BYTES:
        raise SafetensorsError(
            f"header length {n} exceeds the {MAX_HEADER_BYTES // 2**20} MiB limit{hint}")
    if n > file_size - LENGTH_FIELD_BYTES:
        raise SafetensorsError(
            f"header length {n} is larger than the file allows "
            f"({file_size - LENGTH_FIELD_BYTES} bytes after the length field): "
            f"file truncated or not safetensors{hint}")
    return n


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict:
    # json.loads silently keeps the last duplicate; a hostile file could hide a tensor that way.
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise SafetensorsError(f"key {display_name(key)} appears twice in the header JSON")
        out[key] = value
    return out


def _decode_json(raw: bytes) -> dict:
    cost = parse_cost(raw)
    if cost > MAX_PARSE_COST:
        raise SafetensorsError(
            f"header is too complex to parse safely: its {len(raw)} bytes could build ~{cost // 2**20} MiB "
            f"of objects (limit {MAX_PARSE_COST // 2**20} MiB, about 25,000 tensors)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SafetensorsError(f"header is not valid UTF-8 (bad byte at offset {e.start})") from None
    try:
        obj = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as e:
        raise SafetensorsError(f"header is not valid JSON: {e.msg} at char {e.pos}") from None
    except RecursionError:
        raise SafetensorsError("header is not valid JSON: nested too deeply") from None
    except SafetensorsError:  # a duplicate key, from the hook
        raise
    except ValueError as e:  # e.g. an integer literal over Python's 4300-digit conversion limit
        raise SafetensorsError(f"header is not valid JSON: {str(e).split(';')[0][:160]}") from None
    if not isinstance(obj, dict):
        raise SafetensorsError(
            f"header JSON must be an object mapping tensor names to entries, got {type(obj).__name__}")
    return obj


def _parse_metadata(value: object) -> Mapping[str, str]:
    if not isinstance(value, dict):
        raise SafetensorsError(f"__metadata__ must be an object of string to string, got {type(value).__name__}")
    for k, v in value.items():
        if not isinstance(v, str):
            raise SafetensorsError(
                f"__metadata__ must be an object of string to string: "
                f"value of {display_name(k)} is {type(v).__name__}")
    return MappingProxyType(dict(value))


def _parse_entry(name: str, entry: object, data_size: int) -> TensorEntry:
    t = f"tensor {display_name(name)}"
    if not isinstance(entry, dict):
        raise SafetensorsError(
            f"{t}: entry must be an object with dtype, shape, data_offsets; got {type(entry).__name__}")
    missing, extra = ENTRY_KEYS - entry.keys(), entry.keys() - ENTRY_KEYS
    if missing or extra:
        raise SafetensorsError(
            f"{t}: entry must have exactly dtype, shape, data_offsets "
            f"(missing {sorted(missing)}, unexpected {_show(sorted(extra))})")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise SafetensorsError(f"{t}: unknown dtype {_show(dtype)}; expected one of {', '.join(DTYPES)}")
    if not isinstance(shape, list) or not all(_is_int(d) and 0 <= d <= MAX_DIM for d in shape):
        raise SafetensorsError(
            f"{t}: shape must be a list of non-negative integers (each below 2**63), got {_show(shape)}")
    if len(shape) > MAX_DIMS:
        raise SafetensorsError(f"{t}: shape has {len(shape)} dims; at most {MAX_DIMS} are supported")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) for o in offsets)):
        raise SafetensorsError(f"{t}: data_offsets must be [begin, end] integers, got {_show(offsets)}")
    begin, end = offsets
    shown = f"data_offsets [{_show(begin)}, {_show(end)}]"
    if not 0 <= begin <= end:
        raise SafetensorsError(f"{t}: {shown} need 0 <= begin <= end")
    if end > data_size:
        raise SafetensorsError(
            f"{t}: {shown} run past the data region ({data_size} bytes): file truncated or header corrupt")
    need = math.prod(shape) * DTYPES[dtype].itemsize  # end <= data_size here, so a huge need just mismatches
    if end - begin != need:
        raise SafetensorsError(
            f"{t}: data_offsets span {end - begin} bytes but shape {shape} of {dtype} needs {_show(need)} bytes")
    return TensorEntry(name, dtype, tuple(shape), begin, end)


def _check_no_overlap(entries: list[TensorEntry]) -> None:
    # Sorted by begin, a tensor overlaps an earlier one iff it starts before the furthest end
    # seen so far. Empty tensors occupy no bytes and cannot overlap.
    furthest: TensorEntry | None = None
    for e in entries:
        if e.nbytes == 0:
            continue
        if furthest is not None and e.begin < furthest.end:
            raise SafetensorsError(
                f"tensors {display_name(furthest.name)} and {display_name(e.name)} overlap in the data region "
                f"([{furthest.begin}, {furthest.end}) and [{e.begin}, {e.end}))")
        if furthest is None or e.end > furthest.end:
            furthest = e


def parse_header(raw: bytes, file_size: int) -> Header:
    """Validate the N header bytes `raw` of a file of `file_size` bytes (N = len(raw))."""
    data_start = LENGTH_FIELD_BYTES + len(raw)
    data_size = file_size - data_start
    obj = _decode_json(raw)
    metadata = _parse_metadata(obj.pop(METADATA_KEY)) if METADATA_KEY in obj else MappingProxyType({})
    entries = [_parse_entry(name, entry, data_size) for name, entry in obj.items()]
    entries.sort(key=lambda e: (e.begin, e.end))
    _check_no_overlap(entries)
    tensors = MappingProxyType({e.name: e for e in entries})
    return Header(len(raw), data_start, data_size, metadata, tensors)


def read_header(f: BinaryIO, file_size: int) -> Header:
    """Read and validate the header of the safetensors stream `f` (seeks to 0; reads 8 + N bytes)."""
    f.seek(0)
    prefix = f.read(LENGTH_FIELD_BYTES)
    n = header_length(prefix, file_size)
    raw = f.read(n)
    if len(raw) != n:
        raise SafetensorsError(f"file ended after {len(raw)} of {n} header bytes: file truncated")
    return parse_header(raw, file_size)
