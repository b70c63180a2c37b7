"""Fuzzing the safetensors loader with hostile files (hypothesis, fixed seed, bounded time and memory).

Mutations of real safetensors files (written by the `safetensors` package): byte flips, truncation and junk,
the 8-byte header length field, JSON-level edits (dtypes, shapes, offsets, huge numbers, nesting, duplicate
keys, non-UTF-8 bytes), random JSON headers and random bytes. For every case the loader must answer with a
tensor list or a `SafetensorsError` (nothing else escapes), finish within `CASE_SECONDS`, keep its peak
traced allocation within `memory_bound(blob)`, and every listed tensor must load with the listed shape and
dtype or fail with a `SafetensorsError`. `EXPLORER_FUZZ_EXAMPLES` scales the number of cases (default 10,000
in all) and `EXPLORER_FUZZ_SEED` picks another seed for a longer exploratory run (see README, Hosting limits).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import struct
import time
import tracemalloc

import pytest
import torch
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from safetensors.torch import save

from explorer.loader import SafetensorsError, list_tensors_from_bytes, load_tensor_from_bytes
from explorer.safetensors_header import DTYPES, MAX_HEADER_BYTES, MAX_PARSE_COST, parse_cost

TOTAL_CASES = int(os.environ.get("EXPLORER_FUZZ_EXAMPLES", "10000"))
SEED = int(os.environ.get("EXPLORER_FUZZ_SEED", "20250917"))
CASE_SECONDS = 5.0        # the per-case deadline (a SIGALRM watchdog that interrupts a hang, which hypothesis'
                          # own deadline cannot): far above the ~1 ms a case takes, even on a busy CI machine
MESSAGE_CHARS = 400       # an error is one short line
SLACK_BYTES = 1 << 20     # interpreter noise and small objects around the parse


def memory_bound(blob: bytes) -> int:
    """The stated bound: 1 MiB + 2 x file size (header copy, tensor copies) + the header's parse cost
    (`parse_cost`, itself capped at MAX_PARSE_COST before json runs)."""
    return SLACK_BYTES + 2 * len(blob) + min(parse_cost(blob), MAX_PARSE_COST)


def _seed_files() -> list[bytes]:
    g = torch.Generator().manual_seed(0)
    every = {
        "layer.0.w": torch.randn(3, 4, generator=g), "layer.0.b": torch.randn(4, generator=g).half(),
        "mask": torch.tensor([True, False, True, True]), "q.qweight": torch.arange(4, dtype=torch.int8).reshape(2, 2),
        "empty": torch.zeros(0, 3), "scalar": torch.tensor(1.5, dtype=torch.bfloat16),
        "f8": torch.tensor([0.5, -2.0]).to(torch.float8_e4m3fn), "cube": torch.ones(2, 1, 2, dtype=torch.float64),
    }
    return [save(every, metadata={"format": "pt"}), save({"w": torch.eye(2)}), save({})]


SEEDS = _seed_files()
CASES = {"count": 0}


class Hang(Exception):
    pass


@contextlib.contextmanager
def watchdog(seconds: float):
    """Raise Hang in the main thread if the block runs longer than `seconds` (SIGALRM)."""
    def fire(signum, frame):
        raise Hang(f"a case ran longer than {seconds} s")
    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _clear(e: SafetensorsError) -> None:
    msg = str(e)
    assert msg and len(msg) <= MESSAGE_CHARS and "\n" not in msg, msg[:1000]


def _answer(blob: bytes, as_stream: bool) -> None:
    data = io.BytesIO(blob) if as_stream else blob
    try:
        infos = list_tensors_from_bytes(data, "fuzz.safetensors")
    except SafetensorsError as e:
        _clear(e)
        return
    for info in infos:
        try:
            t = load_tensor_from_bytes(data, info.name)
        except SafetensorsError as e:
            _clear(e)
            continue
        assert tuple(t.shape) == info.shape and t.dtype == DTYPES[info.dtype].torch_dtype, info
        assert t.numel() * t.element_size() == info.nbytes == info.end - info.begin, info


@contextlib.contextmanager
def traced_peak():
    """Yields a callable giving the peak bytes allocated since entry (tracing only this block: tracing
    hypothesis' own generation too would make the run 40x slower)."""
    tracemalloc.start()
    try:
        yield lambda: tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def check(blob: bytes) -> None:
    """One case: bytes in memory and a stream, timed and memory-measured."""
    CASES["count"] += 1
    for as_stream in (False, True):
        with traced_peak() as peak, watchdog(CASE_SECONDS):
            _answer(blob, as_stream)
            used = peak()
        assert used <= memory_bound(blob), f"peak {used} B > bound {memory_bound(blob)} B for {len(blob)} B"


def run_fuzz(strategy, share: float) -> None:
    """Run check() on `share` of TOTAL_CASES examples of `strategy`, and prove that many ran."""
    n = max(1, round(TOTAL_CASES * share))
    start = CASES["count"]

    @seed(SEED)
    @settings(max_examples=n, deadline=None, database=None, derandomize=False, print_blob=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(strategy)
    def case(blob):
        check(blob)

    case()
    assert CASES["count"] - start >= n * 0.95, f"only {CASES['count'] - start} of {n} cases ran"


# --- strategies -------------------------------------------------------------------------------------------

seed_file = st.sampled_from(SEEDS)


def header_of(blob: bytes) -> tuple[dict, bytes]:
    (n,) = struct.unpack("<Q", blob[:8])
    return json.loads(blob[8:8 + n]), blob[8 + n:]


def framed(header: bytes, data: bytes) -> bytes:
    return struct.pack("<Q", len(header)) + header + data


@st.composite
def byte_flips(draw):
    blob = bytearray(draw(seed_file))
    for _ in range(draw(st.integers(1, 8))):
        # Mostly inside the length field and header, where the structure lives.
        hi = len(blob) - 1 if draw(st.booleans()) else min(len(blob) - 1, 8 + 200)
        blob[draw(st.integers(0, hi))] = draw(st.integers(0, 255))
    return bytes(blob)


@st.composite
def truncations(draw):
    blob = draw(seed_file)
    cut = draw(st.integers(0, len(blob)))
    return blob[:cut] + draw(st.binary(max_size=64))


EDGE_LENGTHS = [0, 1, 2, 7, 8, MAX_HEADER_BYTES, MAX_HEADER_BYTES + 1, 2**31, 2**32 - 1, 2**63, 2**64 - 1]


@st.composite
def length_fields(draw):
    blob = draw(seed_file)
    (n,) = struct.unpack("<Q", blob[:8])
    new = draw(st.one_of(st.sampled_from(EDGE_LENGTHS + [len(blob), len(blob) - 8]),
                         st.integers(max(0, n - 16), n + 16), st.integers(0, 2**64 - 1)))
    return struct.pack("<Q", new) + blob[8:]


BAD_INTS = st.one_of(st.integers(-3, 40), st.sampled_from([2**31, 2**32, 2**53, 2**63 - 1, 2**63, 2**64, 10**40]),
                     st.integers(-(2**70), 2**70))
JSONISH = st.recursive(
    st.one_of(st.none(), st.booleans(), BAD_INTS, st.floats(allow_nan=False), st.text(max_size=12)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=12)
FIELD_VALUES = {
    "dtype": st.one_of(st.sampled_from([*DTYPES, "F8_E4M3FNUZ", "C64", "U64", "f32", "", "BOOL "]), JSONISH),
    "shape": st.one_of(st.lists(BAD_INTS, max_size=10), JSONISH),
    "data_offsets": st.one_of(st.lists(BAD_INTS, min_size=0, max_size=3), JSONISH),
}


@st.composite
def json_mutations(draw):
    """Edit the parsed header, then re-frame it with a consistent length field and the original data."""
    header, data = header_of(draw(seed_file))
    names = [k for k in header if k != "__metadata__"]
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["field", "drop", "extra", "entry", "metadata", "rename", "shift"]))
        if names and op in ("field", "drop", "extra", "entry", "shift"):
            name = draw(st.sampled_from(names))
            entry = header[name] if isinstance(header[name], dict) else {}
            header[name] = entry
            if op == "field":
                key = draw(st.sampled_from(sorted(FIELD_VALUES)))
                entry[key] = draw(FIELD_VALUES[key])
            elif op == "drop" and entry:
                entry.pop(draw(st.sampled_from(sorted(entry))))
            elif op == "extra":
                entry[draw(st.text(max_size=8))] = draw(JSONISH)
            elif op == "shift" and isinstance(entry.get("data_offsets"), list):
                entry["data_offsets"] = [o + draw(st.integers(-8, 8)) if isinstance(o, int) else o
                                         for o in entry["data_offsets"]]
            else:
                header[name] = draw(JSONISH)
        elif op == "metadata":
            header["__metadata__"] = draw(JSONISH)
        else:  # rename / add a tensor, possibly aliasing another's bytes
            src = header[draw(st.sampled_from(names))] if names else {}
            header[draw(st.text(max_size=40))] = src
    raw = json.dumps(header).encode()
    raw += b" " * draw(st.integers(0, 8))
    return framed(raw, data + draw(st.binary(max_size=8)))


@st.composite
def raw_header_edits(draw):
    """Text-level edits json.dumps cannot make: duplicate keys, non-UTF-8 bytes, deep nesting, huge literals."""
    header, data = header_of(draw(seed_file))
    text = json.dumps(header).encode()
    op = draw(st.sampled_from(["dup", "bytes", "nest", "literal", "json"]))
    if op == "dup" and len(header) > 0:
        key = draw(st.sampled_from(sorted(header)))
        text = text[:-1] + b", " + json.dumps({key: header[key]}).encode()[1:]
    elif op == "bytes":
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.binary(min_size=1, max_size=4)) + text[at:]
    elif op == "nest":
        depth = draw(st.sampled_from([10, 100, 1000, 5000]))
        text = b'{"x": ' + b"[" * depth + b"]" * depth + b"}"
    elif op == "literal":
        big = draw(st.sampled_from([b"9" * 5000, b"1e999", b"-1e999", b"NaN", b"Infinity", b"-0", b"1.0e2"]))
        text = text.replace(b"[0, ", b"[" + big + b", ", 1) if b"[0, " in text else b'{"x": ' + big + b"}"
    else:
        text = json.dumps(draw(JSONISH)).encode()
    return framed(text, data)


random_files = st.one_of(
    st.binary(max_size=256),
    st.builds(lambda rest: b"PK\x03\x04" + rest, st.binary(max_size=64)),       # torch.save zip
    st.builds(lambda rest: b"\x80\x02" + rest, st.binary(max_size=64)),          # legacy pickle
)


# --- the fuzz tests (10,000 cases in all by default) ------------------------------------------------------

def test_fuzz_byte_flips():
    run_fuzz(byte_flips(), 0.25)


def test_fuzz_truncation_and_junk():
    run_fuzz(truncations(), 0.15)


def test_fuzz_length_field():
    run_fuzz(length_fields(), 0.15)


def test_fuzz_json_fields():
    run_fuzz(json_mutations(), 0.25)


def test_fuzz_raw_header_text():
    run_fuzz(raw_header_edits(), 0.15)


def test_fuzz_random_bytes():
    run_fuzz(random_files, 0.05)


def test_seed_files_are_valid():
    """The mutations start from files the loader reads (else the fuzz would only test error paths)."""
    for blob in SEEDS:
        infos = list_tensors_from_bytes(blob, "seed.safetensors")
        for info in infos:
            load_tensor_from_bytes(blob, info.name)
    assert len(list_tensors_from_bytes(SEEDS[0], "seed.safetensors")) == 8


# --- defects the fuzzing found, and hostile headers too big to fuzz cheaply --------------------------------

def test_integer_over_python_digit_limit_is_a_safetensors_error():
    raw = b'{"x": {"dtype": "F32", "shape": [' + b"9" * 5000 + b'], "data_offsets": [0, 4]}}'
    with pytest.raises(SafetensorsError, match="header is not valid JSON: .*4300 digits"):
        list_tensors_from_bytes(framed(raw, bytes(4)), "x.safetensors")


def test_empty_tensor_with_a_dim_beyond_int64_refused():
    raw = json.dumps({"e": {"dtype": "F32", "shape": [0, 2**63], "data_offsets": [0, 0]}}).encode()
    with pytest.raises(SafetensorsError, match=r"shape must be a list of non-negative integers \(each below 2\*\*63\)"):
        list_tensors_from_bytes(framed(raw, b""), "x.safetensors")
    ok = json.dumps({"e": {"dtype": "F32", "shape": [0, 2**63 - 1], "data_offsets": [0, 0]}}).encode()
    assert load_tensor_from_bytes(framed(ok, b""), "e").shape == (0, 2**63 - 1)


def test_messages_stay_short_for_huge_values():
    name = "n" * 100_000
    raw = json.dumps({name: {"dtype": "F32" * 1000, "shape": [1] * 5000, "data_offsets": [0, 4]}}).encode()
    with pytest.raises(SafetensorsError, match=r"tensor 'n+…n+' \(100000 characters\): unknown dtype") as e:
        list_tensors_from_bytes(framed(raw, bytes(4)), "x.safetensors")
    assert len(str(e.value)) < MESSAGE_CHARS


@pytest.mark.parametrize("body", [
    b'{"x": [' + b"[]," * 2_000_000 + b"[]]}",
    b'{"x": [' + b"{}," * 2_000_000 + b"{}]}",
    b"{" + b'"a":0,' * 1_000_000 + b'"a":0}',
    b'{"x": [' + b'"ab",' * 1_200_000 + b'""]}',
], ids=["empty lists", "empty objects", "duplicate keys", "tiny strings"])
def test_hostile_headers_refused_before_parsing(body):
    """~6 MB headers that json would turn into ~150 MB of objects are refused from byte counts alone."""
    blob = framed(body, b"")
    t0 = time.perf_counter()
    with traced_peak() as peak, pytest.raises(SafetensorsError, match=r"too complex to parse safely.*limit 64 MiB"):
        list_tensors_from_bytes(blob, "x.safetensors")
    assert time.perf_counter() - t0 < 1.0
    assert peak() < len(blob) + SLACK_BYTES  # only the header copy


def test_parse_cost_bounds_what_json_builds():
    """parse_cost is an upper bound on json's real allocation for the worst shapes json can be fed."""
    bodies = [b"[" + b"[]," * 60_000 + b"[]]", b"[" + b'{"":0},' * 30_000 + b"{}]",
              b"{" + b",".join(b'"%x":0' % i for i in range(30_000)) + b"}", b"[" + b"1e0," * 50_000 + b"0]",
              ("[" + '"\U0001F600a",' * 25_000 + '""]').encode()]
    for body in bodies:
        with traced_peak() as peak:
            json.loads(body.decode())
            real = peak()
        assert real <= parse_cost(body), (body[:20], real, parse_cost(body))
        assert real >= parse_cost(body) / 8  # and not absurdly loose
