"""llm-compressor's own AWQ scale search on one Linear, for side-by-side benchmarks (bench environment only).

    OMP_NUM_THREADS=1 .venv-bench/bin/python scripts/peer_awq.py

llm-compressor (0.14, `llmcompressor/modifiers/transform/awq/base.py`, Lin et al. 2023, arXiv 2306.00978) runs AWQ
only as a model-level modifier. To time *its* code rather than a re-implementation, `llmcompressor_awq` builds a
two-module model, smooth (x * weight, weight = 1: a norm-like layer, so the Linear reads exactly X) -> balance (the
Linear W), and drives it the way `oneshot` does (`Oneshot.apply_recipe_modifiers`): a fresh session initialised with
the recipe [AWQModifier(mapping smooth -> balance, duo_scaling, n_grid=20), QuantizationModifier(INT `bits`, group
strategy)], then its SequentialPipeline over one calibration batch [1, tokens, in], then finalize. Its hooks collect
mean |X|, `_apply_smoothing` runs the reference forward, `_compute_best_scale` (grid, memoryless min-max observer,
compressed-tensors' forward_quantize, `_compute_loss`) and folds 1/s into the smooth layer and s into W.
Three things make that possible on a CPU-only torch without a transformers model: the model gets the `config` and
`device` attributes the pipeline's tracer reads; `IntermediatesCache.pin_memory` becomes a no-op when there is no
accelerator (pinning is only for host-to-device copies; unpatched it raises "Cannot access accelerator device");
the class methods `_apply_smoothing`, `_compute_best_scale`, `_compute_loss` are wrapped (never changed) to time the
smoothing step and record the grid losses and chosen scales. Ŵ = Q(W diag(s)) diag(s)^-1 is read back from the
module's own qparams after finalize. compressed-tensors keeps fp32 scales and a zero point clamped to the signed
code range; our default spec rounds scales to fp16, so Ŵ matches our fake_quantize only with scale_dtype="fp32".

Bench-only: it needs llmcompressor + transformers (`.venv-bench`), not the project's dependencies; the project's
own AWQ is `explorer.methods.awq_search`.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from unittest import mock

import torch


def llmcompressor_awq(w: torch.Tensor, x: torch.Tensor, bits: int, group_size: int, symmetric: bool,
                      duo_scaling: bool, *, check: bool = False) -> dict:
    """llm-compressor's AWQ search for one Linear W [out, in] whose input is X [tokens, in] (see module docstring).

    Returns w_hat [out, in] float32 (Q(W s) / s with its chosen s and its INT `bits` group quantizer), seconds (its
    `_apply_smoothing`: reference forward + 20-point grid + folding; the analog of our awq_search), grid_seconds
    (`_compute_best_scale` alone), ratio (its chosen grid ratio: alpha), duo_scaling, losses (its `_compute_loss`
    per grid point), best_loss, scales [in], how. With check=True also model_rel_diff: the finalized quantized
    model's own forward on X against X w_hat^T (should be ~1e-7; costs one forward). Never mutates w or x.
    """
    from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme, forward_quantize
    from llmcompressor.args import DatasetArguments
    from llmcompressor.core import create_session
    from llmcompressor.modifiers.quantization import QuantizationModifier
    from llmcompressor.modifiers.transform.awq import AWQModifier
    from llmcompressor.modifiers.transform.awq.mappings import AWQMapping
    from llmcompressor.pipelines.cache import IntermediatesCache
    from llmcompressor.pipelines.sequential import SequentialPipeline
    from transformers import PretrainedConfig

    if w.dim() != 2 or x.dim() != 2 or x.shape[1] != w.shape[1]:
        raise ValueError(f"W {tuple(w.shape)} and X {tuple(x.shape)} do not fit; allowed: W [out, in], X [tokens, in]")

    class Smooth(torch.nn.Module):  # a norm's affine part: x * weight, weight [in] = 1, so balance reads exactly X
        def __init__(self, n: int):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(n))

        def forward(self, h):
            return h * self.weight

    class OneLinearBlock(torch.nn.Module):  # the sequential target: one "decoder layer" holding the mapping
        def __init__(self):
            super().__init__()
            self.config, self.device = PretrainedConfig(), torch.device("cpu")  # read by the pipeline's tracer
            self.smooth = Smooth(w.shape[1])
            self.balance = torch.nn.Linear(w.shape[1], w.shape[0], bias=False)
            self.balance.weight.data.copy_(w.float())

        def forward(self, x):
            return self.balance(self.smooth(x))

    model = OneLinearBlock()
    qargs = QuantizationArgs(num_bits=bits, type="int", symmetric=symmetric, strategy="group", group_size=group_size)
    recipe = [AWQModifier(mappings=[AWQMapping("re:^smooth$", ["re:^balance$"])], duo_scaling=duo_scaling, n_grid=20),
              QuantizationModifier(config_groups={"group_0": QuantizationScheme(targets=["Linear"], weights=qargs)})]

    rec = {"seconds": 0.0, "grid_seconds": 0.0, "losses": [], "grid": None, "scales": None}
    smoothing, best_scale = AWQModifier._apply_smoothing, AWQModifier._compute_best_scale
    loss = AWQModifier._compute_loss

    def timed_smoothing(self, *a, **k):
        start = time.perf_counter()
        out = smoothing(self, *a, **k)
        rec["seconds"] += time.perf_counter() - start
        return out

    def timed_best_scale(self, *a, **k):
        start = time.perf_counter()
        out = best_scale(self, *a, **k)
        rec["grid_seconds"] += time.perf_counter() - start
        rec["scales"], rec["grid"] = out.float(), self._get_grid_search_params()
        return out

    def recorded_loss(self, *a, **k):
        out = loss(self, *a, **k)
        rec["losses"].append(out)
        return out

    patches = [mock.patch.object(AWQModifier, "_apply_smoothing", timed_smoothing),
               mock.patch.object(AWQModifier, "_compute_best_scale", timed_best_scale),
               mock.patch.object(AWQModifier, "_compute_loss", recorded_loss)]
    if not torch.accelerator.is_available():  # pinning only speeds host-to-device copies; on CPU-only it raises
        patches.append(mock.patch.object(IntermediatesCache, "pin_memory", lambda self, *a, **k: None))
    with create_session() as session:
        for p in patches:
            p.start()
        try:
            session.initialize(model=model, start=-1, recipe=recipe)
            SequentialPipeline()(model, [{"x": x.float()[None]}],
                                 DatasetArguments(sequential_targets=["OneLinearBlock"]))
            session.finalize()
        finally:
            for p in reversed(patches):
                p.stop()

    if rec["scales"] is None:
        raise RuntimeError("llm-compressor skipped the smooth -> balance mapping (no grid search ran)")
    bal, s = model.balance, rec["scales"]
    with torch.no_grad():
        w_s = bal.weight.detach().float()  # W diag(s), as _apply_smoothing left it
        w_hat = forward_quantize(bal, w_s, "weight", bal.quantization_scheme.weights).float() / s
    best = min(range(len(rec["losses"])), key=rec["losses"].__getitem__)  # first minimum: its strict '<'
    out = {"w_hat": w_hat, "seconds": rec["seconds"], "grid_seconds": rec["grid_seconds"],
           "ratio": float(rec["grid"][best][0]), "duo_scaling": bool(rec["grid"][best][1]),
           "losses": rec["losses"], "best_loss": rec["losses"][best], "scales": s,
           "how": "llm-compressor 0.14's AWQModifier + QuantizationModifier run through a session and its "
                  "SequentialPipeline (as oneshot does) on a norm-like smooth layer -> this Linear, with "
                  "IntermediatesCache.pin_memory made a no-op on CPU and its smoothing step timed by a wrapper; "
                  "Ŵ = its fake-quant of W diag(s), divided by s"}
    if check:  # the finalized model fake-quantizes its weight in forward: that is what would be served
        with torch.no_grad():
            y_model, y_hat = model(x.float()), x.float() @ w_hat.T
        out["model_rel_diff"] = float((y_model - y_hat).norm() / y_hat.norm())
    return out


if __name__ == "__main__":
    import contextlib
    import io
    import os

    os.environ.setdefault("LLM_COMPRESSOR_LOG_DISABLED", "true")  # its INFO/WARNING lines per step
    here = Path(__file__).resolve().parent
    sys.path.insert(0, str(here))
    sys.path.insert(0, str(here.parent))
    from bench_methods import layer

    from explorer.formats import make_spec
    from explorer.methods import awq_search
    from explorer.metrics import output_rel_error
    from explorer.quantize import fake_quantize

    torch.set_num_threads(1)
    w, x, x_test = layer(4096, 4096, 2048, 0, False)
    spec = make_spec("int4", "group", 128, symmetric=False)
    spec32 = make_spec("int4", "group", 128, symmetric=False, scale_dtype="fp32")
    print(f"layer {tuple(w.shape)}, {x.shape[0]} calibration + {x_test.shape[0]} held-out tokens, {spec.label}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    w0, x0 = w.clone(), x.clone()
    ours = awq_search(w, x, spec)
    w_rtn = fake_quantize(w, spec)
    rtn_cal, rtn_test = output_rel_error(x, w, w_rtn), output_rel_error(x_test, w, w_rtn)
    rows = [("RTN", None, None, w_rtn), ("ours awq_search", ours.seconds, ours.alpha, ours.w_hat)]
    for duo in (False, True):
        with contextlib.redirect_stderr(io.StringIO()):  # its progress bars
            r = llmcompressor_awq(w, x, 4, 128, False, duo, check=True)
        mse = float((x @ (w - r["w_hat"]).T).double().square().mean())
        print(f"llm-compressor duo_scaling={duo}: smoothing {r['seconds']:.2f} s (grid alone {r['grid_seconds']:.2f} s)"
              f", ratio {r['ratio']:.4f} (duo {r['duo_scaling']}); its best loss {r['best_loss']:.6e} vs MSE of "
              f"returned Ŵ {mse:.6e}; quantized model forward vs X Ŵ^T: {r['model_rel_diff']:.2e}")
        # same s through our quantizer with fp32 scales (compressed-tensors keeps fp32; our spec rounds to fp16)
        ref = fake_quantize(w * r["scales"], spec32).float() / r["scales"]
        print(f"  vs our fake_quantize(W s, fp32 scales) / s at its s: {int(((r['w_hat'] - ref).abs() > 1e-6).sum())} "
              f"of {w.numel()} elements differ; max |Δ| vs our fp16-scale spec "
              f"{float((r['w_hat'] - fake_quantize(w * r['scales'], spec).float() / r['scales']).abs().max()):.2e}")
        rows.append((f"llm-compressor AWQ, duo_scaling={duo}", r["seconds"], r["ratio"], r["w_hat"]))
    assert torch.equal(w, w0) and torch.equal(x, x0), "inputs were mutated"
    print("\n| method | seconds | alpha / ratio | error (calib) | vs RTN | error (held out) | vs RTN |")
    print("|---|---|---|---|---|---|---|")
    for label, secs, alpha, w_hat in rows:
        cal, test = output_rel_error(x, w, w_hat), output_rel_error(x_test, w, w_hat)
        secs, alpha = ("", "") if secs is None else (f"{secs:.2f}", f"{alpha:.4f}")
        print(f"| {label} | {secs} | {alpha} | {cal:.4f} | {cal / rtn_cal:.2f}x | {test:.4f} | "
              f"{test / rtn_test:.2f}x |")
