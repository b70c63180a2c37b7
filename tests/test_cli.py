"""The command line: JSON rows, every format, skipped tensors, errors as one line with exit status 2."""
import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from explorer import format_names, make_spec
from explorer.cli import main
from explorer.metrics import weight_metrics
from explorer.quantize import quantize

FIELDS = {"tensor", "shape", "dtype", "format", "granularity", "group_size", "symmetric", "scale_dtype", "mse",
          "rel_error", "sqnr_db", "max_abs_error", "cosine", "clipped_frac", "zeroed_frac", "bits_per_weight",
          "packed_bytes"}


@pytest.fixture
def model_file(tmp_path):
    g = torch.Generator().manual_seed(0)
    tensors = {
        "layers.0.mlp.weight": torch.randn(32, 256, generator=g) * 0.02,
        "layers.0.mlp.bias": torch.zeros(32),
        "layers.0.norm.weight": torch.ones(256),
        "layers.1.bad.weight": torch.tensor([[1.0, float("nan")], [0.0, 1.0]]),
        "layers.1.small.weight": torch.randn(4, 64, generator=g).half(),
    }
    path = tmp_path / "m.safetensors"
    save_file(tensors, str(path))
    return path, tensors


def run(argv, capsys):
    rc = main(argv)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_json_rows_for_every_format_match_the_library(model_file, capsys):
    path, tensors = model_file
    rc, out, _ = run(["stats", str(path), "--tensor", r"mlp\.weight$", "--json"], capsys)
    assert rc == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["format"] for r in rows] == format_names()
    for r in rows:
        assert FIELDS <= set(r)
        spec = make_spec(r["format"], r["granularity"], r["group_size"] or 128, r["symmetric"])
        m = weight_metrics(tensors["layers.0.mlp.weight"], quantize(tensors["layers.0.mlp.weight"], spec))
        assert r["rel_error"] == pytest.approx(m.rel_error) and r["bits_per_weight"] == pytest.approx(m.bits_per_weight)


def test_options_select_one_spec(model_file, capsys):
    path, _ = model_file
    rc, out, _ = run(["stats", str(path), "--tensor", "mlp.weight", "--format", "int4", "--granularity", "group",
                      "--group-size", "64", "--asymmetric", "--json"], capsys)
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert (row["format"], row["granularity"], row["group_size"], row["symmetric"]) == ("int4", "group", 64, False)
    assert row["bits_per_weight"] == pytest.approx(4 + 32 / 64)


def test_non_quantizable_tensors_are_listed_with_the_reason(model_file, capsys):
    path, _ = model_file
    rc, out, _ = run(["stats", str(path), "--format", "int8", "--json"], capsys)
    assert rc == 0
    rows = {json.loads(line)["tensor"]: json.loads(line) for line in out.splitlines()}
    assert "1-D" in rows["layers.0.mlp.bias"]["skipped"]
    assert "NaN or Inf" in rows["layers.1.bad.weight"]["skipped"]
    assert rows["layers.1.small.weight"]["dtype"] == "F16" and "rel_error" in rows["layers.1.small.weight"]


def test_group_wider_than_a_row_is_a_skipped_row_not_a_crash(model_file, capsys):
    path, _ = model_file
    rc, out, _ = run(["stats", str(path), "--tensor", "small", "--format", "int4", "--group-size", "128"], capsys)
    assert rc == 0 and "group_size=128 is larger than the row (64 inputs)" in out


def test_text_table(model_file, capsys):
    path, _ = model_file
    rc, out, _ = run(["stats", str(path), "--tensor", "mlp"], capsys)
    assert rc == 0 and "int4 g128" in out and "skipped: 1-D" in out


@pytest.mark.parametrize("argv,match", [
    (["stats", "/does/not/exist.safetensors"], "does not exist"),
    (["stats", "{path}", "--format", "int9"], "unknown format 'int9'"),
    (["stats", "{path}", "--tensor", "("], "not a valid regular expression"),
    (["stats", "{path}", "--tensor", "zzz"], "no tensor"),
    (["stats", "{path}", "--group-size", "0"], "--group-size 0 is not allowed"),
    (["stats", "{path}", "--format", "mxfp4", "--granularity", "channel"], "not allowed for block format"),
    (["stats", "{pickle}"], "pickle"),
])
def test_errors_are_one_line_with_status_2(model_file, tmp_path, capsys, argv, match):
    path, _ = model_file
    pickle = tmp_path / "model.bin"
    pickle.write_bytes(b"\x80\x04")
    argv = [a.format(path=path, pickle=pickle) for a in argv]
    rc, _, err = run(argv, capsys)
    assert rc == 2 and match in err and err.count("\n") == 1 and "Traceback" not in err


def test_module_entry_point_and_formats():
    out = subprocess.run([sys.executable, "-m", "explorer", "formats"], capture_output=True, text=True, check=True)
    assert all(name in out.stdout for name in format_names())
    bad = subprocess.run([sys.executable, "-m", "explorer", "stats", "/nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
