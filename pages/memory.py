"""Memory & bandwidth: what a format saves on real models and real hardware — and what it really buys here.

Thin: widgets -> WeightSchemes -> cached footprints (explorer.memory) -> deployments and roofline points
(explorer.bounds) -> figure builders (explorer.plots.memory). "Measure here" times the sidebar's layer with
explorer.measure.measure_layer, cached once per (source, tensor, device, budget).
"""
from typing import NamedTuple

import streamlit as st

from explorer import FORMATS, Granularity, Kind, make_spec
from explorer.bounds import (
    W8A8_FOR_FORMAT, WEIGHT_ONLY, Deployment, decode_bound, deployment, roofline, roofline_point,
)
from explorer.hardware import HARDWARE, Hardware, MathDType, this_machine
from explorer.measure import measure_copy_bandwidth
from explorer.memory import KV_FORMATS, Footprint, Overhead, StoreDType, WeightScheme, fit, footprint, \
    kv_cache_bytes
from explorer.model_configs import MODEL_CONFIGS, ModelConfig, TensorSpec, model_tensors, tensors_from_listing
from explorer.plots import memory as figs
from explorer.plots.common import MUTED
from explorer.units import GB, GiB, fmt_bytes
from ui import check_yourself, common, state
from ui import params as P
from ui import params_memory as PM
from ui.memory_views import csv, hardware_tab, measure_tab, not_a_promise

# The Layer Lab's format choice is one of the format options: its params travel in this page's link too.
PARAMS = PM.MEMORY + [P.FMT, P.GRAN, P.GROUP, P.SYM, P.SCALE]
OVERHEAD = Overhead()
ROOF_BATCHES = (1, 4, 16, 64, 256, 1024, 4096)


@st.cache_data(max_entries=32, show_spinner=False)
def footprints(model_key: str, source_key: str, schemes: tuple[WeightScheme, ...], _tensors) -> list[Footprint]:
    """Cached per (model or loaded source, schemes); the tensor list itself is not hashed."""
    with common.compute_slot():  # bounds the server's memory when many visitors compute at once
        return [footprint(_tensors, s) for s in schemes]


@st.cache_data(max_entries=1, show_spinner="Measuring this machine's memory bandwidth…")
def machine_bandwidth() -> tuple[float, str]:
    with common.compute_slot():
        r = measure_copy_bandwidth("cpu", 64 * 2 ** 20, budget_s=0.5)
    return r.bytes_per_s, (f"measured here: torch copy of {r.nbytes / 2 ** 20:.0f} MiB on the CPU, median of "
                           f"{r.repeats} (explorer.measure.measure_copy_bandwidth; a floor, not a datasheet)")


def short(hw: Hardware) -> str:
    return "this machine (CPU)" if hw.key == PM.THIS_MACHINE else hw.name.replace("NVIDIA ", "").replace("GeForce ", "")


def scheme_for(option: str, asym: bool, lm_head: bool) -> tuple[str, WeightScheme]:
    """A format option -> (label, scheme). Grouped integer formats get zero points when `asym` (GPTQ/AWQ
    checkpoints); int8 per-channel stays symmetric, as W8A8 kernels run it."""
    if option == PM.BASELINE:
        return "bf16 (baseline)", WeightScheme(None, StoreDType.BF16)
    if option == PM.LAB:
        fmt = FORMATS[state.get(P.FMT)]
        spec = make_spec(fmt.name, None if fmt.is_block else state.get(P.GRAN), state.get(P.GROUP),
                         state.get(P.SYM) or fmt.kind is not Kind.INT, state.get(P.SCALE))
        return f"Layer Lab: {spec.label}", WeightScheme(spec, quantize_lm_head=lm_head)
    usual = make_spec(option)
    zero = asym and usual.format.kind is Kind.INT and usual.granularity is Granularity.GROUP
    spec = make_spec(option, symmetric=not zero)
    return spec.label, WeightScheme(spec, quantize_lm_head=lm_head)


def pick(label, options, param, fmt=None, **kw):
    value = state.get(param)
    if value not in options:  # a link may carry any number in range: offer it
        options = sorted([*options, value])
    st.select_slider(label, options, key=state.bind(param), format_func=fmt or str, **kw)
    return state.commit(param)


def model_label(key: str) -> str:
    n = MODEL_CONFIGS[key].published_params
    return f"{MODEL_CONFIGS[key].display_name} ({n / 1e9:.3g}B)" if n >= 1e9 else \
        f"{MODEL_CONFIGS[key].display_name} ({n / 1e6:.3g}M)"


def controls(sel):
    loaded = f"the loaded file ({sel.source.label})" if sel.source else "the loaded file (none)"
    c1, c2 = st.columns([2, 5])
    with c1:
        st.selectbox("Model", PM.MODEL_CHOICES, key=state.bind(PM.MODEL),
                     format_func=lambda k: loaded if k == PM.LOADED else model_label(k))
        model = state.commit(PM.MODEL)
    with c2:
        lab = scheme_for(PM.LAB, False, False)[0]
        st.multiselect("Weight formats (usual granularity)", PM.FORMAT_CHOICES, key=state.bind(PM.FORMATS),
                       format_func=lambda o: lab if o == PM.LAB else scheme_for(o, False, False)[0]
                       if o != PM.BASELINE else "bf16 (baseline, nothing quantized)")
        options = state.commit(PM.FORMATS) or [PM.BASELINE]
    c1, c2, c3, c4 = st.columns([3, 3, 2, 3])
    with c1:
        context = pick("Context (tokens per sequence)", PM.CONTEXTS, PM.CONTEXT, lambda n: f"{n:,}")
    with c2:
        batch = pick("Batch (sequences at once)", PM.BATCHES, PM.BATCH)
    with c3:
        st.selectbox("KV-cache dtype", list(KV_FORMATS), key=state.bind(PM.KV),
                     help="\n\n".join(f"**{k}**: {v.note}" for k, v in KV_FORMATS.items()))
        kv = KV_FORMATS[state.commit(PM.KV)]
    with c4:
        st.toggle("Zero points (GPTQ/AWQ)", key=state.bind(PM.ASYM),
                  help="int2..int7 g128 store an fp16 zero point beside each fp16 scale, as GPTQ/AWQ checkpoints do: "
                       "int4 g128 = 4 + 32/128 = 4.25 bits (4.125 without)")
        asym = state.commit(PM.ASYM)
        st.toggle("Quantize lm_head too", key=state.bind(PM.LM_HEAD), help="Usually kept at 16 bits")
        lm_head = state.commit(PM.LM_HEAD)
    st.multiselect("GPUs", PM.GPU_CHOICES, key=state.bind(PM.GPUS),
                   format_func=lambda k: "This machine (bandwidth measured here)" if k == PM.THIS_MACHINE
                   else HARDWARE[k].name)
    gpus = state.commit(PM.GPUS) or ["h100_sxm"]
    return model, options, context, batch, kv, asym, lm_head, gpus


def hardware_list(keys: list[str]) -> list[Hardware]:
    out = []
    for k in keys:
        if k == PM.THIS_MACHINE:
            out.append(this_machine(*machine_bandwidth()))
        else:
            out.append(HARDWARE[k])
    return out


def memory_tab(labels, fps, deps, kv_bytes, hws, pres, model_name):
    weights = [f.weight_bytes / GiB for f in fps]
    over = [d[0].fit.overhead_bytes / GiB for d in deps]
    fig = figs.memory_bars(labels, weights, [kv_bytes / GiB] * len(fps), over,
                           [(short(h), h.memory_bytes.value / GiB) for h in hws],
                           f"{model_name}: memory per format (weights + KV cache + overhead)", pres)
    common.plot(fig)
    sizes = figs.size_rows(labels, fps, deps, kv_bytes)
    fits = figs.fit_rows(labels, [short(h) for h in hws], deps)
    st.markdown("**Does it fit?** On one GPU, or on how many when weights and cache are split evenly (tensor "
                "parallelism usually runs on 1, 2, 4 or 8):")
    st.dataframe(fits, hide_index=True, width="stretch")
    st.dataframe(sizes, hide_index=True, width="stretch")
    csv("Memory table (CSV)", [a | b for a, b in zip(sizes, fits)], "memory-fit.csv")
    st.caption(f"Overhead = {OVERHEAD.describe()}: a stated rule of thumb (CUDA context, workspaces, activations, "
               f"fragmentation), not a measurement. Scales and zero points are counted exactly: int4 g128 with an "
               f"fp16 scale and zero is 4 + 32/128 = 4.25 bits, not the round 4 bits of most calculators. "
               f"Embeddings and norms stay at 16 bits. GiB = 2³⁰ bytes (what GPU memory sizes really are); "
               f"GB = 10⁹ bytes.")
    common.show_code(footprint, kv_cache_bytes, fit)


def speed_tab(labels, deps, hws, batch, context, kv, pres, model_name):
    names = [short(h) for h in hws]
    tps = [[d.decode.tokens_per_s for d in ds] for ds in deps]
    who = "per second, all sequences together" if batch > 1 else "per second"
    fits = [[d.fit.fits for d in ds] for ds in deps]
    common.plot(figs.tokens_bars(names, labels, tps, f"{model_name}: decode upper bound, batch {batch}, "
                                 f"context {context:,} — tokens {who}", presenter=pres, fits=fits))
    if not all(all(row) for row in fits):
        st.caption("Hatched bars: the model does not fit on one such device (see the memory tab). Split over n "
                   "devices with ideal tensor parallelism, the bandwidth — and the bound — grow up to n-fold.")
    rows = figs.speed_rows(labels, names, deps)
    st.dataframe(rows, hide_index=True, width="stretch")
    csv("Speed bounds (CSV)", rows, "decode-bounds.csv")
    st.markdown(f"""
**How the bound is computed.** One decode step reads every weight matrix once (shared by the whole batch), one
row of the embedding table, and the KV cache of every sequence ({kv.name}). So **tokens/s ≤ batch × bandwidth ÷
bytes read per step**, and never more than the GPU's dense BF16 FLOP/s allow. Fewer bytes per weight: a higher
bound.
""")
    not_a_promise()
    common.show_code(deployment, decode_bound)


def roofline_tab(labels, options, fps, hws, batch, pres, model_name):
    eligible = [h for h in hws if h.key in HARDWARE and h.peak(MathDType.BF16)]
    if not eligible:
        st.info("None of the selected GPUs has a published BF16 peak (Apple and this machine publish none): "
                "pick an NVIDIA GPU to draw its roofline.")
        return
    keys = [h.key for h in eligible]
    if state.get(PM.ROOF) not in keys:
        state.put(PM.ROOF, keys[0])
    st.selectbox("Roofline of", keys, key=state.bind(PM.ROOF), format_func=lambda k: HARDWARE[k].name)
    hw = HARDWARE[state.commit(PM.ROOF)]
    roofs = [figs.Roof(f"{short(hw)}: BF16 roof", hw.peak(MathDType.BF16), hw.bandwidth.value)]
    eight = [m for m in (MathDType.INT8, MathDType.FP8) if hw.peak(m)]
    if eight:  # on Hopper and Ada FP8 and INT8 share one peak: one roof, one label
        same = len(eight) == 2 and hw.peak(eight[0]) == hw.peak(eight[1])
        for m in eight[:1] if same else eight:
            name = "FP8/INT8" if same else m.value.upper()
            roofs.append(figs.Roof(f"{short(hw)}: {name} roof", hw.peak(m), hw.bandwidth.value, dash="dash"))
    roofs += [figs.Roof(f"{short(h)}: BF16 roof", h.peak(MathDType.BF16), h.bandwidth.value, MUTED, "dot")
              for h in eligible if h is not hw]
    batches = tuple(sorted({*ROOF_BATCHES, batch}))
    series = []
    for i, (lab, opt, f) in enumerate(zip(labels, options, fps)):
        pts = roofline(hw, f, WEIGHT_ONLY, batches)
        series.append(figs.Trajectory(f"{lab}, weight-only", [p.intensity for p in pts],
                                      [p.attainable_flops for p in pts], batches, False, i))
        ex = W8A8_FOR_FORMAT.get(opt)
        if ex is not None and hw.peak(ex.math):
            pts = roofline(hw, f, ex, batches)
            series.append(figs.Trajectory(f"{lab}, {ex.math.value.upper()} math (W8A8)", [p.intensity for p in pts],
                                          [p.attainable_flops for p in pts], batches, True, i))
    common.plot(figs.roofline_chart(roofs, series, f"{model_name} on {short(hw)}: the matmuls of one decode step",
                                    pres))
    b1 = roofline_point(hw, fps[0], WEIGHT_ONLY, 1)
    st.markdown(f"""
**Reading it.** Left of the bend (the ridge: {b1.ridge_intensity:.0f} FLOPs per byte for BF16 on {short(hw)}) a
step is **memory-bound**: its time is the bytes it moves. At batch 1 each weight is read for just 2 FLOPs, so
{labels[0]} sits at {b1.intensity:.2f} FLOP/byte and can use only {b1.attainable_flops / b1.peak_flops:.1%} of the
BF16 peak. Batching reuses every weight for many sequences and walks the points right, up to the flat roof:
**compute-bound**. Weight-only formats (circles) start further right (fewer bytes per weight) but keep the BF16
roof; W8A8/FP8 execution (diamonds) also lifts the roof — which pays off only at large batches. Formats with the
same bits per weight land on the same spot.
""")
    common.show_code(roofline_point, figs.roofline_chart)


def headline(labels, fps, ref, deps, hw, batch, pres):
    """Two rows of big numbers: weight memory per format, and its decode bound on the first GPU."""
    n = min(len(fps), 3) if pres else len(fps) if len(fps) <= 5 else -(-len(fps) // 2)  # "≤ 663 tok/s" must fit
    cols = st.columns(n)
    for i, (lab, f) in enumerate(zip(labels, fps)):
        ratio = ref.weight_bytes / f.weight_bytes
        cols[i % n].metric(lab, f"{f.weight_bytes / GiB:.2f} GiB", f"{ratio:.2f}× smaller" if ratio > 1.0001 else None,
                           delta_color="off", delta_arrow="off",
                           help=f"weights at {f.bits_per_weight:.3f} bits per parameter overall "
                                f"({f.weight_bytes / GB:.2f} GB = 10⁹ bytes)")
    st.markdown(f"**Decode upper bound on {short(hw)}**, batch {batch}:")
    cols = st.columns(n)
    for i, (lab, ds) in enumerate(zip(labels, deps)):
        cols[i % n].metric(lab, f"≤ {ds[0].decode.tokens_per_s:,.0f} tok/s",
                           help=f"{fmt_bytes(ds[0].bytes_per_step)} read per decode step")


class Sized(NamedTuple):
    """Everything the tabs show about the chosen model, computed by the library."""

    name: str
    cfg: ModelConfig | None
    tensors: tuple[TensorSpec, ...]
    labels: list[str]
    ref: Footprint              # bf16, for the "× smaller" deltas
    fps: list[Footprint]        # one per chosen format
    hws: list[Hardware]
    kv_bytes: float
    deps: list[list[Deployment]]  # [format][device]


def size(sel, model, options, context, batch, kv, asym, lm_head, gpus) -> Sized | None:
    """Footprints and deployments of the chosen model; None (with a message) when there is nothing to size."""
    if model == PM.LOADED and not sel.infos:
        st.info(sel.error or "Pick a weight source in the sidebar to size the loaded file.")
        return None
    try:
        if model == PM.LOADED:
            cfg, src_key, name = None, sel.source.key, sel.source.label
            tensors = tensors_from_listing([(i.name, i.shape, i.dtype) for i in sel.infos])
        else:
            cfg, src_key = MODEL_CONFIGS[model], ""
            name, tensors = cfg.display_name, model_tensors(cfg)
        pairs = [scheme_for(o, asym, lm_head) for o in options]
        ref, *fps = footprints(model, src_key, (WeightScheme(None, StoreDType.BF16),) + tuple(s for _, s in pairs),
                               tensors)
        hws = hardware_list(gpus)
        kv_bytes = kv_cache_bytes(cfg, context, batch, kv) if cfg is not None and cfg.causal else 0.0
        deps = [[deployment(h, f, cfg, context, batch, kv, OVERHEAD) for h in hws] for f in fps]
    except ValueError as e:
        st.error(f"Cannot size this model: {e}")
        return None
    return Sized(name, cfg, tensors, [lab for lab, _ in pairs], ref, fps, hws, kv_bytes, deps)


def main():
    sel = common.page_start("Memory & bandwidth", PARAMS, intro="""
What a format really saves on a real model — scales and zero points counted — whether it fits your GPUs, how fast
decoding **could** be, and what it buys on the machine in front of you.""")
    # presenter mode: the settings fold away, the numbers and charts fill the screen
    with st.expander("Model, formats, context, batch, GPUs", expanded=False) if sel.presenter else st.container():
        model, options, context, batch, kv, asym, lm_head, gpus = controls(sel)
    z = size(sel, model, options, context, batch, kv, asym, lm_head, gpus)
    if z is not None:
        if z.cfg is None or not z.cfg.causal:
            st.caption("No KV cache counted: " + ("an encoder keeps none." if z.cfg is not None else
                       f"the architecture of {z.name} is not known from its tensor listing "
                       f"({len(z.tensors)} tensors, {sum(t.numel for t in z.tensors) / 1e6:.1f}M parameters)."))
        headline(z.labels, z.fps, z.ref, z.deps, z.hws[0], batch, sel.presenter)
    tabs = st.tabs(["Memory: does it fit?", "Decode speed bound", "Roofline", "Measure here", "Hardware table"])
    if z is not None:
        with tabs[0]:
            memory_tab(z.labels, z.fps, z.deps, z.kv_bytes, z.hws, sel.presenter, z.name)
        with tabs[1]:
            speed_tab(z.labels, z.deps, z.hws, batch, context, kv, sel.presenter, z.name)
        with tabs[2]:
            roofline_tab(z.labels, options, z.fps, z.hws, batch, sel.presenter, z.name)
    with tabs[3]:
        measure_tab(sel, sel.presenter)
    with tabs[4]:
        hardware_tab(z.hws if z is not None else hardware_list(gpus))
    check_yourself.panel("memory")
    common.page_end(PARAMS)


main()
