"""Home: what quantization trades, what each page shows, and how to point the app at your own model."""
import streamlit as st

from explorer import FORMATS
from ui import common

common.page_start("What does quantization do to a real model?", [], intro="""
Quantization stores a model's weights (and sometimes its activations) in fewer bits: **INT8, INT4 and lower,
FP8, NF4, MX block formats**. It trades **accuracy** for **memory, bandwidth and cost**: a 4-bit model is about a
quarter of the size of its 16-bit original, and decoding one token at a time is limited by how many bytes of
weights must be read, so a smaller model can also be faster — *if* the hardware has kernels for the format.

What you lose depends on the weights themselves: on **outliers** (a few huge values that stretch the scale), on
the **granularity** of the scales, on the **method** (plain rounding, AWQ's activation-aware scaling, GPTQ's error
compensation), and on the **task**: one task can lose 2% while another loses 25% on the same quantized model.

Everything here is computed live from **real weights** (all-MiniLM-L6-v2 and SmolLM2-135M, shipped with the app),
on this server's CPU or GPU.
""")

st.subheader("The pages")
st.markdown("""
- **Layer Lab** — pick a real layer and a format: the weights over the format's levels, the error histograms,
  the channels that suffer most, heatmaps, metrics, and the output error on the layer's real inputs.
- **Formats side by side** — every format at every granularity on one layer: a table, error vs bits per weight with
  the Pareto front, and one error histogram per format.
- **Outlier channels** — the real activation magnitudes of every Linear: the input channels that are huge in every
  block, LLM.int8()'s threshold, and AWQ's salient channels of the selected layer.
- **AWQ** — activation-aware scaling on a real layer's inputs: the activation magnitudes, the scale vector, the
  search over alpha, the salient channels' error before and after, and the output error on held-out tokens.
- **GPTQ** — error feedback column by column: the loss per column (column order vs act-order), the held-out output
  error next to RTN and AWQ (and how too little calibration data overfits), and the measured seconds with an
  extrapolation to 7B and 70B models.
- **Compare methods** — RTN, AWQ, GPTQ, AWQ+GPTQ and SmoothQuant W·A8 in several formats on one layer: one table,
  one chart.
- **Memory & bandwidth** — what each format saves on real models (Llama-3.1, Mistral, Qwen2.5, the loaded file),
  whether it fits your GPUs, the decode tokens/s bound, the roofline, and a timer that measures the layer here.
- **Per-task cliffs** — the whole real model quantized with several schemes (RTN, GPTQ, AWQ) and scored on tasks
  from coarse to fine: one task barely moves while another collapses, and the average hides it; per-layer
  sensitivity and a mixed-precision plan.
- **Quiz** — the lesson's questions on quantization trade-offs, with instant feedback, why each option is
  right or wrong, and a link to the live view that answers each one; presenter mode for a class.
""")

st.subheader("Formats in the registry")
st.dataframe(
    [{"format": f.name, "kind": f.kind.value, "bits": f.bits,
      "block": f.block_size or None, "largest value": f.max_value, "what it is": f.description, "source": f.source}
     for f in FORMATS.values()],
    hide_index=True, width="stretch")

st.subheader("Your own model")
st.markdown("""
- **Upload** a `.safetensors` file in the sidebar (pickle files — `.bin`, `.pt`, `.ckpt` — are refused: loading
  them can run code). The header is checked before any data is read.
- **Running your own copy?** Set `EXPLORER_LOCAL_DIRS=/path/to/models` before `streamlit run app.py` and pick
  *A file or model folder on this server*: a Hugging Face folder with `model.safetensors.index.json` works, and
  only the headers of its shards are read until you pick a tensor.
- **From the command line:** `python -m explorer stats model.safetensors --json` prints every format's error
  per tensor, like llama.cpp's quantize-stats.
""")
common.page_end([])
