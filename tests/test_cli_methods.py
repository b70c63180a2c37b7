"""The command line's --method / --calib / --holdout: the added JSON fields, numbers equal to the library's on the
same split, the text table, and every error as one line with exit status 2."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from explorer import make_spec, samples
from explorer.cli import main
from explorer.methods import Method, run_method
from explorer.metrics import output_rel_error
from explorer.quantize import fake_quantize

torch.set_num_threads(1)
ADDED = {"method", "output_rel_error", "calib_output_rel_error", "rtn_output_rel_error", "alpha", "seconds",
         "calib_tokens", "holdout_tokens"}


@pytest.fixture
def files(tmp_path):
    """A weight file (a Linear [24, 64], another [8, 32], a bias) and an activations file ([80, 64] plus others)."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(24, 64, generator=g) * 0.02
    x = torch.randn(80, 64, generator=g)
    x[:, 5] *= 30.0
    wpath, xpath, one = tmp_path / "w.safetensors", tmp_path / "x.safetensors", tmp_path / "one.safetensors"
    save_file({"fc.weight": w, "fc.bias": torch.zeros(24), "small.weight": torch.randn(8, 32, generator=g)}, str(wpath))
    save_file({"fc.input": x, "other.input": torch.randn(10, 32, generator=g),
               "pos": torch.arange(80, dtype=torch.int32),
               "flat": torch.randn(64, generator=g)}, str(xpath))
    save_file({"acts": x.reshape(4, 20, 64).contiguous()}, str(one))  # [batch, seq, in]: flattened
    return wpath, xpath, one, w, x


def run(argv, capsys):
    rc = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def rows(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


@pytest.mark.parametrize("name,method", [("rtn", Method.RTN), ("awq", Method.AWQ), ("gptq", Method.GPTQ),
                                         ("awq+gptq", Method.AWQ_GPTQ)])
def test_json_adds_the_method_fields_equal_to_the_library(files, capsys, name, method):
    wpath, xpath, _, w, x = files
    rc, out, err = run(["stats", wpath, "--tensor", "^fc.weight$", "--format", "int4", "--granularity", "group",
                        "--group-size", "32", "--asymmetric", "--method", name, "--calib", f"{xpath}:fc.input",
                        "--json"], capsys)
    assert rc == 0, err
    (row,) = rows(out)
    assert ADDED <= set(row) and row["method"] == name
    spec = make_spec("int4", "group", 32, symmetric=False)
    r = run_method(method, w, spec, x[:60])  # 25% of 80 tokens held out: the last 20
    assert (row["calib_tokens"], row["holdout_tokens"]) == (60, 20)
    assert row["output_rel_error"] == pytest.approx(output_rel_error(x[60:], w, r.w_hat), rel=1e-9)
    assert row["calib_output_rel_error"] == pytest.approx(output_rel_error(x[:60], w, r.w_hat), rel=1e-9)
    assert row["rtn_output_rel_error"] == pytest.approx(output_rel_error(x[60:], w, fake_quantize(w, spec)), rel=1e-9)
    assert row["alpha"] == r.alpha and row["seconds"] >= 0
    assert (row["clipped_frac"] is None) == (method is not Method.RTN)
    assert row["rel_error"] == pytest.approx(float((w - r.w_hat).norm() / w.norm()), rel=1e-6)
    assert ("damp" in row) == (method in (Method.GPTQ, Method.AWQ_GPTQ))


def test_holdout_damp_and_act_order_reach_the_method(files, capsys):
    wpath, xpath, _, w, x = files
    rc, out, _ = run(["stats", wpath, "--tensor", "^fc", "--format", "int8", "--method", "gptq", "--calib",
                      f"{xpath}:fc.input", "--holdout", "0.5", "--damp", "0.1", "--act-order", "--json"], capsys)
    (row,) = [r for r in rows(out) if "method" in r]
    assert (row["calib_tokens"], row["holdout_tokens"], row["damp"], row["act_order"]) == (40, 40, 0.1, True)
    r = run_method(Method.GPTQ, w, make_spec("int8"), x[:40], damp=0.1, act_order=True)
    assert row["output_rel_error"] == pytest.approx(output_rel_error(x[40:], w, r.w_hat), rel=1e-9)
    bias = next(r for r in rows(out) if r["tensor"] == "fc.bias")
    assert "1-D" in bias["skipped"]  # non-quantizable tensors are still listed with the reason


def test_smoothquant_row_reports_w_a8_errors(files, capsys):
    wpath, xpath, _, _, _ = files
    rc, out, _ = run(["stats", wpath, "--tensor", "^fc.weight", "--format", "int8", "--granularity", "channel",
                      "--method", "smoothquant", "--calib", f"{xpath}:fc.input", "--json"], capsys)
    (row,) = rows(out)
    assert row["smooth_alpha"] == 0.5 and row["act_format"] == "int8 per-tensor" and row["alpha"] is None
    assert row["output_rel_error"] < row["output_rel_error_unsmoothed"]  # channel 5 is 30x: smoothing helps


def test_single_matrix_file_needs_no_tensor_name_and_is_flattened(files, capsys):
    wpath, _, one, w, x = files
    rc, out, _ = run(["stats", wpath, "--tensor", "^fc.weight", "--format", "int4", "--granularity", "group",
                      "--group-size", "32", "--method", "rtn", "--calib", one, "--json"], capsys)
    (row,) = rows(out)
    assert rc == 0 and row["calib_tokens"] + row["holdout_tokens"] == 80
    w_rtn = fake_quantize(w, make_spec("int4", "group", 32))
    assert row["output_rel_error"] == pytest.approx(output_rel_error(x[60:], w, w_rtn))


def test_rtn_without_calib_and_the_text_table(files, capsys):
    wpath, xpath, _, _, _ = files
    rc, out, _ = run(["stats", wpath, "--tensor", "small", "--format", "int4", "--granularity", "group",
                      "--group-size", "16", "--method", "rtn", "--json"], capsys)
    (row,) = rows(out)
    assert rc == 0 and row["output_rel_error"] is None and row["method"] == "rtn" and row["calib_tokens"] == 0
    rc, out, _ = run(["stats", wpath, "--tensor", "^fc.weight", "--method", "awq", "--calib", f"{xpath}:fc.input",
                      "--format", "int4", "--granularity", "group", "--group-size", "32"], capsys)
    head, line = out.splitlines()
    assert rc == 0 and head.split()[:4] == ["tensor", "format", "method", "bpw"] and "out_err" in head
    assert line.split()[:3] == ["fc.weight", "int4", "awq"]


@pytest.mark.skipif("minilm" not in samples.sample_models(), reason="MiniLM sample not built")
def test_a_real_sample_layer_with_its_real_inputs(capsys):
    w_file = samples.weights_path("minilm")
    x_file = samples.SAMPLE_DIR / "minilm" / "inputs.safetensors"
    rc, out, _ = run(["stats", w_file, "--tensor", r"layer\.0\.output\.dense\.weight$", "--format", "int4",
                      "--method", "gptq", "--calib", f"{x_file}:encoder.layer.0.output.dense.input", "--json"], capsys)
    (row,) = rows(out)
    w = samples.load_weight("minilm", "encoder.layer.0.output.dense")
    x = samples.load_inputs("minilm", "encoder.layer.0.output.dense")
    r = run_method(Method.GPTQ, w, make_spec("int4"), x[:384])
    assert row["output_rel_error"] == pytest.approx(output_rel_error(x[384:], w, r.w_hat), rel=1e-9)
    assert row["output_rel_error"] < row["rtn_output_rel_error"]


@pytest.mark.parametrize("extra,match", [
    (["--method", "gptq"], "--method gptq needs calibration activations: --calib FILE[:TENSOR]"),
    (["--method", "gptq", "--calib", "{x}:nope"], "--calib: no tensor 'nope' in"),
    (["--method", "gptq", "--calib", "{x}"], "holds 2 activation matrices; name one as --calib"),
    (["--method", "gptq", "--calib", "{x}:other.input"], "has 32 input features [10, 32], but fc.weight [24, 64] "
                                                         "needs 64"),
    (["--method", "awq", "--calib", "{x}:pos"], "is [80] I32; allowed: a floating-point tokens x in_features"),
    (["--method", "awq", "--calib", "{x}:flat"], "is [64] F32; allowed"),
    (["--method", "gptq", "--calib", "{x}:fc.input", "--holdout", "1"], "--holdout 1 is not allowed; choose 0 <"),
    (["--method", "gptq", "--calib", "{x}:fc.input", "--holdout", "0"], "--holdout 0 is not allowed"),
    (["--method", "gptq", "--calib", "{x}:fc.input", "--holdout", "quarter"], "--holdout 'quarter' is not a number"),
    (["--method", "gptq", "--calib", "{x}:fc.input", "--damp", "-1"], "--damp -1 is not allowed"),
    (["--method", "gptq2", "--calib", "{x}:fc.input"], "unknown method 'gptq2'; choose one of ['rtn', 'awq'"),
    (["--calib", "{x}:fc.input", "--holdout", "0.5"], "--calib, --holdout take effect only with --method"),
    (["--method", "awq", "--calib", "/does/not/exist.safetensors:fc"], "does not exist"),
])
def test_errors_are_one_line_with_status_2(files, capsys, extra, match):
    wpath, xpath, _, _, _ = files
    argv = ["stats", wpath, "--tensor", "fc.weight", "--json"] + [a.format(x=xpath) for a in extra]
    rc, out, err = run(argv, capsys)
    assert rc == 2 and match in err and err.count("\n") == 1 and "Traceback" not in err and out == ""
