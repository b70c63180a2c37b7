"""Header validation: every defect of a hostile/corrupt safetensors file is a SafetensorsError."""
from __future__ import annotations

import io
import json
import struct

import pytest
import torch
from safetensors.torch import save

from explorer.safetensors_header import (
    DTYPES, MAX_HEADER_BYTES, SafetensorsError, parse_header, read_header,
)


def raw_file(header, data: bytes = b"") -> bytes:
    """A file with the given header (dict -> JSON, or raw bytes) and data region."""
    body = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(body)) + body + data


def parse(blob: bytes):
    return read_header(io.BytesIO(blob), len(blob))


def entry(dtype="F32", shape=(2, 3), offsets=(0, 24)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


def test_valid_header_fields_and_order():
    blob = raw_file({"__metadata__": {"format": "pt"}, "b": entry(offsets=(24, 48)), "a": entry()},
                    bytes(48))
    h = parse(blob)
    assert list(h.tensors) == ["a", "b"]  # file order, by data offset
    assert h.tensors["b"].begin == 24 and h.tensors["b"].nbytes == 24 and h.tensors["b"].numel == 6
    assert h.data_start == len(blob) - 48 and h.data_size == 48
    assert dict(h.metadata) == {"format": "pt"}


def test_matches_safetensors_writer_layout():
    tensors = {"w": torch.ones(3, 5, dtype=torch.float16), "i": torch.arange(4, dtype=torch.int64)}
    blob = save(tensors, metadata={"k": "v"})
    h = parse(blob)
    assert h.tensors["w"].shape == (3, 5) and h.tensors["w"].dtype == "F16"
    assert h.tensors["i"].shape == (4,) and h.tensors["i"].dtype == "I64"
    assert h.data_start + h.data_size == len(blob)


def test_empty_header_object_is_valid():
    assert len(parse(raw_file({})).tensors) == 0


def test_dtype_table_itemsizes_match_torch():
    for code, spec in DTYPES.items():
        assert spec.itemsize == torch.empty((), dtype=spec.torch_dtype).element_size(), code
        assert spec.is_float == spec.torch_dtype.is_floating_point, code


@pytest.mark.parametrize("blob, match", [
    (b"\x01\x00", "too short"),
    (struct.pack("<Q", 0) + b"{}", "header length 0 is too small"),
    (struct.pack("<Q", MAX_HEADER_BYTES + 1) + b"{}", "exceeds the 100 MiB limit"),
    (struct.pack("<Q", 50) + b"{}", "larger than the file"),
    (b"PK\x03\x04\x14\x00\x00\x00" + bytes(64), "PyTorch pickle/zip"),
])
def test_bad_header_length(blob, match):
    with pytest.raises(SafetensorsError, match=match):
        parse(blob)


def test_non_utf8_non_json_not_object():
    with pytest.raises(SafetensorsError, match="not valid UTF-8"):
        parse(raw_file(b'{"\xff": 1}'))
    with pytest.raises(SafetensorsError, match="not valid JSON"):
        parse(raw_file(b'{"a": '))
    with pytest.raises(SafetensorsError, match="not valid JSON: nested too deeply"):
        parse(raw_file(b"[" * 100_000 + b"]" * 100_000))
    with pytest.raises(SafetensorsError, match="must be an object.*got list"):
        parse(raw_file([1, 2]))


def test_duplicate_tensor_name():
    body = b'{"a": ' + json.dumps(entry()).encode() + b', "a": ' + json.dumps(entry()).encode() + b"}"
    with pytest.raises(SafetensorsError, match="'a' appears twice"):
        parse(raw_file(body, bytes(24)))


@pytest.mark.parametrize("bad, match", [
    ({"x": 5}, "tensor 'x': entry must be an object"),
    ({"x": {"dtype": "F32", "shape": [1]}}, r"tensor 'x': entry must have exactly.*missing \['data_offsets'\]"),
    ({"x": {**entry(), "extra": 1}}, r"tensor 'x'.*unexpected \['extra'\]"),
    ({"x": entry(dtype="F7")}, "tensor 'x': unknown dtype 'F7'; expected one of F64"),
    ({"x": entry(dtype="C64", shape=(3,))}, "unknown dtype 'C64'"),
    ({"x": entry(shape=(-1, 6))}, "tensor 'x': shape must be a list of non-negative integers"),
    ({"x": entry(shape=(2.0, 3))}, "shape must be a list of non-negative integers"),
    ({"x": entry(shape=(True, 6))}, "shape must be a list of non-negative integers"),
    ({"x": {**entry(), "shape": "2x3"}}, "shape must be a list"),
    ({"x": entry(shape=(1,) * 9, offsets=(0, 4))}, "shape has 9 dims; at most 8"),
    ({"x": entry(offsets=(0,))}, r"data_offsets must be \[begin, end\] integers"),
    ({"x": entry(offsets=(0.0, 24))}, r"data_offsets must be \[begin, end\] integers"),
    ({"x": entry(offsets=(24, 0))}, r"need 0 <= begin <= end"),
    ({"x": entry(offsets=(-24, 0))}, r"need 0 <= begin <= end"),
    ({"x": entry(offsets=(24, 48))}, r"tensor 'x': data_offsets \[24, 48\] run past the data region \(24 bytes\)"),
    ({"x": entry(offsets=(0, 20))}, r"tensor 'x': data_offsets span 20 bytes but shape \[2, 3\] of F32 needs 24"),
    ({"x": entry(), "y": entry(dtype="F16", shape=(2, 2), offsets=(16, 24))}, "tensors 'x' and 'y' overlap"),
    ({"__metadata__": {"a": 1}}, "__metadata__ must be an object of string to string: value of 'a' is int"),
    ({"__metadata__": ["a"]}, "__metadata__ must be an object of string to string, got list"),
])
def test_entry_defects(bad, match):
    with pytest.raises(SafetensorsError, match=match):
        parse(raw_file(bad, bytes(24)))


def test_overlap_detected_past_a_long_tensor():
    # 'big' spans everything; 'c' sits inside it but after 'b': compare against the furthest end.
    hdr = {"big": entry(shape=(12,), offsets=(0, 48)), "b": entry(shape=(1,), offsets=(0, 4)),
           "c": entry(shape=(1,), offsets=(40, 44))}
    with pytest.raises(SafetensorsError, match="overlap"):
        parse(raw_file(hdr, bytes(48)))


def test_adjacent_and_empty_tensors_do_not_overlap():
    hdr = {"a": entry(), "e": entry(shape=(0, 3), offsets=(24, 24)), "b": entry(offsets=(24, 48)),
           "e0": entry(shape=(0,), offsets=(0, 0))}
    assert len(parse(raw_file(hdr, bytes(48))).tensors) == 4


def test_truncated_file():
    blob = save({"w": torch.zeros(8, 8)})
    with pytest.raises(SafetensorsError, match=r"tensor 'w'.*run past the data region.*truncated"):
        parse(blob[:-1])
    with pytest.raises(SafetensorsError, match="larger than the file.*truncated"):
        parse(blob[:20])


def test_short_read_of_header():
    blob = raw_file({})
    # A stream shorter than the size it claims (e.g. a file that shrank after stat()).
    with pytest.raises(SafetensorsError, match="file ended after 1 of 2 header bytes"):
        read_header(io.BytesIO(blob[:-1]), len(blob))


def test_parse_header_is_pure():
    raw = json.dumps({"x": entry()}).encode()
    assert parse_header(raw, 8 + len(raw) + 24) == parse_header(raw, 8 + len(raw) + 24)
