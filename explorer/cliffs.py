"""Per-task quality cliffs: one model, several whole-model quantization schemes, several tasks.

The lesson (AutoAWQ #475: perplexity fine, HumanEval 0.67 -> 0.37; auto-round #2067: HellaSwag flat, GSM8K -7):
the same quantized model can lose almost nothing on one task and a lot on another, while a whole-model average
(embedding cosine, mean KL) looks fine. `run_sweep` quantizes the model with each scheme
(`explorer.whole_model.quantize_model`), scores it on every task (`explorer.tasks`) and compares each task with
the unquantized model: the score change, the decisions that flipped, the margins. `find_cliffs` lists the
task/scheme pairs whose damage passes a tolerance. Schemes are evaluated one at a time; only their outcomes are
kept (never the quantized models), so a sweep's memory is one model copy at a time.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable, Sequence

import numpy as np
from torch import nn

from explorer.formats import make_spec
from explorer.methods import Method
from explorer.scheme import Scheme
from explorer.tasks import SCORERS, Evaluation, Task, TaskChange, compare, model_tasks
from explorer.whole_model import load_model, quantize_model

Progress = Callable[[float, str], None]


def _s(spec, method: Method, name: str) -> Scheme:
    return Scheme(spec, method, name=name)


# key -> Scheme: the schemes the app offers, as data. The first six are the default sweep.
CATALOG = MappingProxyType({
    "int8_ch": _s(make_spec("int8", "channel"), Method.RTN, "INT8 per-channel · RTN"),
    "fp8_t": _s(make_spec("fp8_e4m3", "tensor"), Method.RTN, "FP8 E4M3 per-tensor · RTN"),
    "int4_g128": _s(make_spec("int4", "group", 128), Method.RTN, "INT4 g128 · RTN"),
    "int4_g128_gptq": _s(make_spec("int4", "group", 128), Method.GPTQ, "INT4 g128 · GPTQ"),
    "int4_t": _s(make_spec("int4", "tensor"), Method.RTN, "INT4 per-tensor · RTN"),
    "nf4_g64": _s(make_spec("nf4", "group", 64), Method.RTN, "NF4 g64 · RTN"),
    "int4_g128_awq": _s(make_spec("int4", "group", 128), Method.AWQ, "INT4 g128 · AWQ"),
    "int4_g128_awq_gptq": _s(make_spec("int4", "group", 128), Method.AWQ_GPTQ, "INT4 g128 · AWQ+GPTQ"),
    "int4_ch": _s(make_spec("int4", "channel"), Method.RTN, "INT4 per-channel · RTN"),
    "int4_ch_gptq": _s(make_spec("int4", "channel"), Method.GPTQ, "INT4 per-channel · GPTQ"),
    "int3_g128": _s(make_spec("int3", "group", 128), Method.RTN, "INT3 g128 · RTN"),
    "int3_g128_gptq": _s(make_spec("int3", "group", 128), Method.GPTQ, "INT3 g128 · GPTQ"),
    "int4_t_gptq": _s(make_spec("int4", "tensor"), Method.GPTQ, "INT4 per-tensor · GPTQ"),
    "int8_t": _s(make_spec("int8", "tensor"), Method.RTN, "INT8 per-tensor · RTN"),
    "mxfp4": _s(make_spec("mxfp4"), Method.RTN, "MXFP4 (block 32) · RTN"),
    "nvfp4": _s(make_spec("nvfp4"), Method.RTN, "NVFP4 (block 16) · RTN"),
})
DEFAULT_SCHEMES = ("int8_ch", "fp8_t", "int4_g128", "int4_g128_gptq", "int4_t", "nf4_g64")


def catalog_scheme(key: str) -> Scheme:
    if key not in CATALOG:
        raise ValueError(f"unknown scheme {key!r}; allowed: {list(CATALOG)}")
    return CATALOG[key]


@dataclass(frozen=True, eq=False)
class SchemeResult:
    """One scheme on every task: bits per Linear weight, the evaluation, the change of each task vs unquantized."""

    scheme: Scheme
    bits_per_weight: float
    evaluation: Evaluation
    changes: MappingProxyType  # task key -> TaskChange
    quantize_seconds: float

    @property
    def label(self) -> str:
        return self.scheme.label

    def change(self, task: str) -> TaskChange:
        if task not in self.changes:
            raise ValueError(f"unknown task {task!r}; allowed: {list(self.changes)}")
        return self.changes[task]


@dataclass(frozen=True)
class Cliff:
    """A task/scheme pair whose damage passes the tolerance, next to the whole-model average of that scheme."""

    scheme: str
    task: str
    damage: float
    flips: int
    n: int
    whole_mean: float | None


@dataclass(frozen=True, eq=False)
class Sweep:
    """Schemes x tasks on one model, with the unquantized evaluation they are compared with."""

    model: str
    tasks: tuple[Task, ...]
    base: Evaluation
    results: tuple[SchemeResult, ...]

    def task(self, key: str) -> Task:
        for t in self.tasks:
            if t.key == key:
                return t
        raise ValueError(f"unknown task {key!r}; allowed: {[t.key for t in self.tasks]}")

    def result(self, label: str) -> SchemeResult:
        for r in self.results:
            if r.label == label:
                return r
        raise ValueError(f"unknown scheme {label!r}; allowed: {[r.label for r in self.results]}")

    def damage_matrix(self) -> np.ndarray:
        """[schemes, tasks] damage in percent units (accuracy points lost, or % perplexity increase)."""
        return np.array([[r.change(t.key).damage for t in self.tasks] for r in self.results], dtype=np.float64)


def evaluate_base(key: str, base: nn.Module, tasks: Sequence[Task]) -> Evaluation:
    """The unquantized model on `tasks` (the reference every scheme is compared with)."""
    return SCORERS[key](base, tasks)


def evaluate_scheme(key: str, scheme: Scheme, base: nn.Module, tasks: Sequence[Task], reference: Evaluation,
                    on_progress: Progress | None = None) -> SchemeResult:
    """Quantize with `scheme`, score every task, compare with `reference` (the unquantized evaluation)."""
    report = on_progress or (lambda f, m: None)
    q = quantize_model(key, scheme, base, on_progress=lambda f, m: report(0.5 * f, f"quantizing: {m}"))
    report(0.5, "scoring the tasks")
    ev = SCORERS[key](q.model, tasks, reference=reference, reference_model=base)
    changes = {t.key: compare(t, reference.outcome(t.key), ev.outcome(t.key)) for t in tasks}
    report(1.0, "done")
    return SchemeResult(scheme, q.bits_per_weight, ev, MappingProxyType(changes), q.seconds)


def run_sweep(key: str, schemes: Sequence[Scheme], base: nn.Module | None = None,
              tasks: Sequence[Task] | None = None, on_progress: Progress | None = None) -> Sweep:
    """Every scheme on every task of model `key` (default: its full task set). Progress goes to
    on_progress(fraction in [0, 1], message)."""
    if not schemes or not all(isinstance(s, Scheme) for s in schemes):
        raise ValueError("schemes must be a non-empty list of Scheme")
    labels = [s.label for s in schemes]
    if len(set(labels)) != len(labels):
        raise ValueError(f"two schemes share a label: {labels}; allowed: distinct labels")
    tasks = tuple(tasks) if tasks is not None else model_tasks(key)
    base = base if base is not None else load_model(key)
    report = on_progress or (lambda f, m: None)
    stages = len(schemes) + 1
    report(0.0, "scoring the unquantized model")
    reference = evaluate_base(key, base, tasks)
    results = []
    for i, s in enumerate(schemes):
        def sub(f: float, m: str, i=i, s=s) -> None:
            report((i + 1 + f) / stages, f"{s.label}: {m}")
        results.append(evaluate_scheme(key, s, base, tasks, reference, sub))
    report(1.0, "done")
    return Sweep(key, tasks, reference, tuple(results))


def find_cliffs(sweep: Sweep, tolerance: float) -> tuple[Cliff, ...]:
    """Task/scheme pairs whose damage exceeds `tolerance` (percent units), worst first."""
    if not np.isfinite(tolerance) or tolerance < 0:
        raise ValueError(f"tolerance={tolerance!r} is not allowed; choose a finite number >= 0")
    out = []
    for r in sweep.results:
        whole = r.evaluation.whole
        for t in sweep.tasks:
            c = r.change(t.key)
            if c.damage > tolerance:
                out.append(Cliff(r.label, t.key, c.damage, len(c.flipped), c.n,
                                 whole.mean if whole is not None else None))
    return tuple(sorted(out, key=lambda c: -c.damage))


def hidden_cliff(sweep: Sweep, tolerance: float) -> Cliff | None:
    """The cliff whose scheme has the best-looking whole-model average (highest mean cosine / lowest mean KL):
    the case an average hides best. None when no pair passes the tolerance."""
    cliffs = [c for c in find_cliffs(sweep, tolerance) if c.whole_mean is not None]
    if not cliffs:
        return None
    w = sweep.results[0].evaluation.whole
    sign = -1.0 if w.higher_is_better else 1.0
    return min(cliffs, key=lambda c: (sign * c.whole_mean, -c.damage))


@dataclass(frozen=True)
class FlipExample:
    """One decision that changed: the prompt, what the unquantized and quantized models chose, their margins."""

    index: int
    prompt: str
    right: str
    before: str
    after: str
    margin_before: float
    margin_after: float


def flip_examples(task: Task, base: Evaluation, result: SchemeResult, limit: int = 8) -> list[FlipExample]:
    """The flipped decisions of `task` under `result`, largest margin swing first."""
    b, q = base.outcome(task.key), result.evaluation.outcome(task.key)
    idx = result.change(task.key).flipped
    order = idx[np.argsort(-np.abs(b.margin[idx] - q.margin[idx]), kind="stable")][:limit]
    out = []
    for i in order.tolist():
        # a text task's right answer is the token itself, marked ⟨ ⟩ at the end of its prompt
        right = task.items[i].choices[task.items[i].answer] if task.items else b.prompts[i].rsplit("⟨", 1)[-1][:-1]
        out.append(FlipExample(i, b.prompts[i], right, b.pred_text[i], q.pred_text[i], float(b.margin[i]),
                               float(q.margin[i])))
    return out


def summary_rows(sweep: Sweep) -> list[dict]:
    """One row per scheme x task (for tables and CSV)."""
    rows = []
    for r in sweep.results:
        whole = r.evaluation.whole
        for t in sweep.tasks:
            c = r.change(t.key)
            rows.append({"scheme": r.label, "bits_per_weight": round(r.bits_per_weight, 4), "task": t.key,
                         "metric": c.metric.value, "unquantized": c.base_score, "score": c.score,
                         "change": c.change, "damage": c.damage, "flips": len(c.flipped), "decisions": c.n,
                         "right_to_wrong": c.broke, "wrong_to_right": c.fixed,
                         "whole_model_mean": None if whole is None else whole.mean,
                         "whole_model_worst": None if whole is None else whole.worst})
    return rows

