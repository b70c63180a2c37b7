"""Memory & bandwidth page, part two: "Measure here" (times the sidebar's layer on this machine), the cited
hardware table, and the "a bound is not a promise" box. Split from pages/memory.py to keep pages short."""
import os

import streamlit as st

from explorer.hardware import HARDWARE, this_machine
from explorer.measure import LayerTiming, Variant, measure_layer
from explorer.plots import memory as figs
from ui import common
from ui.text import md_literal

MEASURE_BATCHES = (1, 64)


# Seconds one "Measure here" run may take (tests set a small value).
def measure_budget() -> float:
    """Seconds one "Measure here" run may take, read at call time (tests set a small value)."""
    return float(os.environ.get("EXPLORER_MEASURE_BUDGET_S", "4"))


LLAMA_CPP = ("llama.cpp's own measurement (tools/quantize README, Llama-3.1-8B on one machine): F16 decodes "
             "**29.17 tok/s**, Q4_K_M **71.93 tok/s** — **2.47× faster for a 3.27× smaller file**")


VLLM = ("vLLM issue #19264: FP8 ran **no faster than BF16** on an RTX 4090 — half the bytes per weight, "
        "no speed-up")


@st.cache_data(max_entries=16, show_spinner=False)
def timing(source_key: str, tensor: str, device: str, budget_s: float, _w) -> LayerTiming:
    """Cached per (source, tensor, device, budget). The progress bar lives inside, so a cache hit replays it
    (drawn, then removed) instead of touching an element the cached run did not create."""
    bar = st.progress(0.0, text="Waiting for a free compute slot…")
    with common.compute_slot():  # also keeps other visitors' work from skewing the timings
        t = measure_layer(_w, MEASURE_BATCHES, budget_s,
                          on_progress=lambda f, msg: bar.progress(min(f, 1.0), text=msg))
    bar.empty()
    return t


def csv(label: str, rows: list[dict], filename: str) -> None:
    common.download_csv(label, {k: [r[k] for r in rows] for k in rows[0]}, filename, key=f"dl_{filename}")


def not_a_promise():
    st.warning(f"""**A bound is not a promise.** It is what the memory could deliver if the kernels streamed the
bytes at the datasheet's full bandwidth and did nothing else. Real kernels get a fraction of it, and a format
without a fast kernel gets nothing:

- {LLAMA_CPP} — a real speed-up, but less than the bytes saved.
- {VLLM}.""", icon=":material/speed:")


def hardware_tab(hws):
    rows = figs.hardware_rows(hws)
    cell = lambda v: str(v).replace("|", "\\|").replace("\n", " ")  # noqa: E731  (markdown table cell)
    lines = ["| device | quantity | value | source | note |", "|---|---|---|---|---|"]
    lines += [f"| {cell(r['device'])} | {cell(r['quantity'])} | **{cell(r['value'])}** | {cell(r['source'])} | "
              f"{cell(r['note'])} |" for r in rows]
    st.markdown("\n".join(lines))
    all_rows = figs.hardware_rows(list(HARDWARE.values()) + [this_machine()])
    csv("Whole hardware table (CSV)", all_rows, "hardware.csv")
    st.caption("The selected devices; the CSV holds every row. Dense tensor throughput only: NVIDIA prints tensor "
               "figures with 2:4 sparsity, twice the dense ones. '—' means nobody published the number (or the "
               "chip lacks the feature), never a guess.")


def busy() -> tuple[float | None, int]:
    """The 1-minute load average (None where the OS has none) and the logical core count."""
    try:
        return os.getloadavg()[0], os.cpu_count() or 1
    except (OSError, AttributeError):
        return None, os.cpu_count() or 1


def measure_tab(sel, pres):
    st.markdown("""
Published numbers are hypotheses; this machine is the experiment. **Measure here** times the sidebar's layer,
y = x Wᵀ, on the device picked in the sidebar: fp32, bf16, int8 (W8A8 with `torch._int_mm`, where the platform
has it) and 4-bit stored as codes + scales, dequantized to bf16 before each matmul — at batch 1 (decoding one
token) and at batch 64.
""")
    if not common.require_tensor(sel):
        return
    info = sel.tensor
    key = (sel.source.key, info.name, str(sel.device))
    done = st.session_state.setdefault("_mem_measured", [])
    st.caption(f"Layer **{md_literal(info.name)}** {list(info.shape)} on **{sel.device}** (pick another in the sidebar) · "
               f"about {measure_budget():g} s")
    if st.button("Measure this layer here", key="mem_measure", type="primary", icon=":material/timer:"):
        if key not in done:
            done.append(key)
            del done[:-16]
    if key not in done:
        return
    try:
        t = timing(*key, measure_budget(), sel.weight())
    except ValueError as e:
        st.error(f"Cannot time this tensor: {e}")
        return
    st.markdown(f"Measured on **{t.hardware}** · device `{t.device}` · **{t.threads} torch thread(s)** · "
                f"W {list(t.shape)} · 4-bit = {t.four_bit} · took {t.elapsed_s:.1f} s")
    load, cores = busy()
    if t.device == "cpu" and load is not None and load > cores:
        threads = (f" With {t.threads} torch threads waiting on each other they can be off by orders of "
                   f"magnitude: run the app with fewer (EXPLORER_TORCH_THREADS=1)." if t.threads > 1 else "")
        st.warning(f"This machine is busy (load average {load:.1f} on {cores} cores): other processes compete for "
                   f"the CPU, so these timings are noisy. Measure again when it is quieter.{threads}",
                   icon=":material/warning:")
    variants = list(Variant)
    fp32 = t.get(Variant.FP32, MEASURE_BATCHES[0]).weight_bytes
    smaller = [fp32 / t.get(v, MEASURE_BATCHES[0]).weight_bytes for v in variants]
    speed = [(f"speed-up at batch {b}", [t.get(v, b).speedup_vs_fp32 for v in variants]) for b in MEASURE_BATCHES]
    common.plot(figs.measured_bars([v.value for v in variants], smaller, speed,
                                   f"{info.name}: bytes saved vs time saved, measured here", pres))
    rows = figs.timing_rows(t)
    st.dataframe(rows, hide_index=True, width="stretch")
    csv("Measurements (CSV)", rows, f"{info.name}-timings.csv")
    b = MEASURE_BATCHES[0]
    q4, bf = t.get(Variant.DEQUANT4, b), t.get(Variant.BF16, b)
    here = (f"Here, at batch {b}, 4-bit took **{q4.median_s * 1e3:.3f} ms** against bf16's "
            f"**{bf.median_s * 1e3:.3f} ms** ({bf.median_s / q4.median_s:.2f}× the speed) for "
            f"{bf.weight_bytes / q4.weight_bytes:.1f}× fewer bytes.")
    st.info(f"""**Why 4-bit without a fused kernel is not faster.** The 4-bit weight is about a quarter of the
bytes, but without a fused kernel (one that unpacks the codes inside the matmul, as llama.cpp's, Marlin or
ExLlama's do) every call first rebuilds the full 16-bit matrix, then multiplies it: the bytes stored shrink, the
bytes moved and the work grow. {here} The same holds for int8 unless the int8 matmul itself is fast on this chip.
Smaller is faster only with a kernel that reads the small format directly — which is what the decode bound
assumes.""", icon=":material/info:")
    not_a_promise()
    common.show_code(measure_layer)
