"""The quiz's questions (data for explorer.quiz): one per lesson topic, plus a number to work out for topic 10.

Written for this project. Numbers cite their sources: format constants (torch.finfo, the OCP 8-bit FP spec), the
GPTQ and AWQ papers (arXiv 2210.17323, 2306.00978), NVIDIA's H100 datasheet, issue threads of quantization
projects. Every "see it" link opens a live view on the bundled real weights.
"""
from __future__ import annotations

from explorer.quiz import Kind, Numeric, Option, Question, Quiz, Trap, see

MINILM = "sample:minilm"
FFN_OUT = "encoder.layer.0.output.dense.weight"       # absmax/std = 175: the layer with the worst weight outliers
KEY_5 = "encoder.layer.5.attention.self.key.weight"   # its input's channel 99 is among the 1% most salient
# One scheme set for every matrix link: its sweep is computed once per server and shared by all of them.
CLIFFS = dict(cs="int8_ch,int4_ch,int4_t", cq=40, crun=1)

LAB_INT4 = see("layer_lab", "Layer Lab: a real layer's weights moved onto the INT4 g128 grid",
               src=MINILM, t=FFN_OUT, fmt="int4", gran="group", gs=128)
GPTQ_PAGE = see("gptq", "GPTQ on a real layer: its measured seconds and error",
                src=MINILM, t=FFN_OUT, fmt="int4", gran="group", gs=128)
MATRIX = see("cliffs", "Per-task cliffs: INT8 vs INT4 per-channel vs INT4 per-tensor, task by task", **CLIFFS)
MEMORY = see("memory", "Memory & bandwidth: Llama-3.1-8B's memory and decode bound per format",
             mmodel="llama31_8b", mfmt="bf16,int8,int4")
MEASURED = see("memory", "Memory & bandwidth: datasheet GPUs next to this machine (then the 'Measure here' tab)",
               mmodel="llama31_8b", mgpu="h100_sxm,this_machine")

QUESTIONS = (
    Question(
        "ptq", 1, "What PTQ changes",
        "A trained model goes through post-training quantization such as GPTQ. What changes?",
        Kind.SINGLE,
        "PTQ keeps the architecture and the training result: it stores each weight as a low-precision code plus "
        "shared scales, and GPTQ chooses those codes so that each layer's output on calibration inputs stays close "
        "to the original. The model computes the same function, only approximately.",
        (LAB_INT4, GPTQ_PAGE),
        (Option("a", "The stored weight values: each becomes a low-precision code times a shared scale, chosen to "
                     "keep the layer's outputs close on calibration data", True,
                "Right: only the numbers that represent the weights change (and how many bits they take). Layer "
                "Lab shows a real layer's weights snapped onto the INT4 levels."),
         Option("b", "The model is trained again with gradient descent, at low precision, on its training data",
                False, "That is quantization-aware training (QAT). PTQ uses no training loop and no labels: GPTQ "
                       "needs only a small calibration set, from which it solves a rounding problem layer by layer."),
         Option("c", "Layers and attention heads that matter least are removed", False,
                "That is pruning. Quantization keeps every layer and every weight; it changes how precisely each "
                "weight is stored."),
         Option("d", "The model is distilled into a smaller model with fewer parameters", False,
                "Distillation trains a new, smaller student. A quantized model has exactly the parameter count "
                "of the original; each parameter takes fewer bits.")),
        sources=("GPTQ, Frantar et al. 2022, arXiv 2210.17323",)),
    Question(
        "cliff-name", 2, "The name for uneven damage",
        "After quantization, some tasks degrade severely while others barely change. What is this called?",
        Kind.SINGLE,
        "A per-task quality cliff: damage that is concentrated in some tasks (often the fine-grained ones) while "
        "others, and the whole-model average, look unchanged. The matrix on the cliffs page shows it on a real model.",
        (MATRIX,),
        (Option("a", "Catastrophic forgetting", False,
                "Catastrophic forgetting is what fine-tuning on new data does to old skills. Quantization involves "
                "no new training; it perturbs the weights the model already has."),
         Option("b", "A per-task quality cliff (task-dependent degradation)", True,
                "Right: the damage depends on the task. One task keeps its score while another falls off a cliff, "
                "on the same quantized weights."),
         Option("c", "Calibration overfitting", False,
                "Calibration data can bias a method towards some inputs (one cause of cliffs), but the name of the "
                "uneven outcome itself is not overfitting: the cliff appears with plain rounding too, which uses "
                "no calibration data at all."),
         Option("d", "The quantization noise floor", False,
                "A noise floor is the error level a format cannot go below. It would affect every task alike, "
                "not some tasks severely and others barely."))),
    Question(
        "hypotheses", 3, "Published results are hypotheses",
        "Why should published quantization benchmarks be treated as hypotheses for your own deployment? "
        "Select all that apply.",
        Kind.MULTI,
        "A benchmark is an experiment on someone else's model, tasks, data, hardware and kernels. Your deployment "
        "differs in some of these, and each can change the result; the averages may also hide a cliff on your task. "
        "So a published number tells you what to test, not what you will get.",
        (MATRIX, MEMORY),
        (Option("a", "Your model, fine-tune and tasks differ from the ones that were measured", True,
                "Right: quality loss is task-dependent (AutoAWQ issue #475: perplexity fine while HumanEval fell "
                "from 0.67 to 0.37 on a 72B fine-tune)."),
         Option("b", "Speed depends on your hardware, kernels and batch size", True,
                "Right: a format is not a speed-up without a fast kernel (vLLM issue #19264: FP8 no faster than "
                "BF16 on an RTX 4090), and the Memory page's bound is an upper limit, not a prediction."),
         Option("c", "Averages over public benchmarks can hide a large drop on one task", True,
                "Right: an average of many tasks, or a perplexity, can stay flat while one task collapses; the "
                "cliffs page shows the whole-model average beside each task."),
         Option("d", "Published quantization results are usually fabricated", False,
                "No: published numbers are generally honest measurements. The point is that they were measured "
                "under conditions that are not yours."),
         Option("e", "Quantized models behave randomly, so no result ever reproduces", False,
                "Quantization is deterministic: the same weights, scheme and inputs give the same outputs. Results "
                "reproduce under the same conditions; they transfer poorly to different ones.")),
        sources=("AutoAWQ issue #475", "vLLM issue #19264", "llama.cpp tools/quantize README")),
    Question(
        "ai-helps", 4, "Where AI tools help",
        "Which of these can AI tools genuinely help with when a team adopts quantization? Select all that apply.",
        Kind.MULTI,
        "Assistants are good at drafting, explaining and calculating from what is known: evaluation plans, "
        "conversion and benchmarking scripts, summaries of methods, back-of-envelope bounds you can check. They "
        "cannot observe your workload, so they cannot guarantee an outcome or replace measuring it.",
        (MEMORY,),
        (Option("a", "Drafting an evaluation plan and the scripts that run it", True,
                "Right: a plan and scripts are text an assistant writes quickly and a person reviews and runs."),
         Option("b", "Explaining methods and papers (GPTQ, AWQ, FP8) and comparing their trade-offs", True,
                "Right: summarising published work is a strength, as long as the summary is checked."),
         Option("c", "Back-of-envelope estimates, such as memory footprints and decode bounds", True,
                "Right: these follow from public numbers by arithmetic (the Memory page computes them) and are "
                "easy to check; they are bounds, not predictions."),
         Option("d", "Guaranteeing that accuracy on your own tasks will not drop", False,
                "No tool can: the drop depends on your model, data and tasks, which only an evaluation on them "
                "reveals."),
         Option("e", "Replacing the measurement of latency and throughput on your hardware", False,
                "An estimate is not a measurement: kernels, batch sizes and the serving stack decide the real "
                "numbers, often far below the bound."))),
    Question(
        "ai-limit", 5, "The limit of AI predictions",
        "What is the fundamental limit on an AI tool predicting the economics of quantization for your specific "
        "workload?",
        Kind.SINGLE,
        "The economics (quality kept, speed gained, cost saved) are properties of your workload on your stack: "
        "traffic mix, prompt lengths, batch sizes, tasks, hardware and kernels. An AI tool knows only what was "
        "written down elsewhere and cannot run your system, so its prediction is at best a hypothesis to measure.",
        (MEASURED,),
        (Option("a", "It cannot observe your workload and stack, so it cannot measure what decides the outcome",
                True, "Right: the deciding numbers exist only in your system. The Memory page sets a datasheet "
                      "bound beside this machine's own measured bandwidth, and 'Measure here' times a real layer."),
         Option("b", "It cannot do the arithmetic of memory bandwidth", False,
                "The arithmetic is easy (tokens/s <= bandwidth / bytes read per token). The problem is that the "
                "inputs that matter, and how far real kernels fall short of the bound, are unknown to it."),
         Option("c", "Quantization costs are trade secrets, so no data exists", False,
                "Plenty is public: datasheets, papers, issue threads with measurements. Public data is just not "
                "data about your workload."),
         Option("d", "Its training data predates every quantization method", False,
                "Not a fundamental limit: newer models know the methods. Even perfect knowledge of the methods "
                "leaves your workload unmeasured."))),
    Question(
        "brief", 6, "The four areas of a decision brief",
        "A decision brief on adopting post-training quantization should cover four areas. Which four?",
        Kind.MULTI,
        "A brief lets someone decide: what we gain (memory, cost, speed on our hardware), what we risk (quality "
        "on our own tasks, including cliffs), how we will check it (an evaluation and rollout plan with "
        "acceptance criteria), and what we recommend (the scheme, the decision, and when to roll back).",
        (MEMORY, MATRIX),
        (Option("a", "Expected gains: memory, cost and speed on our hardware", True,
                "Right: the reason to quantize at all, stated as numbers to confirm (the Memory page gives bounds)."),
         Option("b", "Quality risks on our own tasks, including per-task cliffs", True,
                "Right: what could get worse and for whom; an average alone is not enough."),
         Option("c", "How we will validate it: an evaluation and rollout plan with acceptance criteria", True,
                "Right: the plan that turns the hypotheses above into measurements before production."),
         Option("d", "A recommendation: which scheme, the decision, and the conditions for rolling back", True,
                "Right: the brief ends in a decision someone can act on."),
         Option("e", "A proof that no task can degrade", False,
                "No such proof exists; a brief states the risk and how it will be measured and contained."),
         Option("f", "The history of floating-point formats since IEEE 754", False,
                "Background, not a decision area: it does not help anyone decide."),
         Option("g", "Which quantization library has the most GitHub stars", False,
                "Popularity says nothing about quality or speed on your workload; support for your hardware and "
                "kernels belongs under gains and risks."))),
    Question(
        "fp8", 7, "FP8 and its two variants",
        "What does FP8 stand for, and what are its two common variants?",
        Kind.SINGLE,
        "FP8 is 8-bit floating point: a sign, exponent bits and mantissa bits in one byte. E4M3 (4 exponent, 3 "
        "mantissa bits; largest finite value 448) keeps more precision; E5M2 (5 exponent, 2 mantissa bits; largest "
        "finite value 57344) keeps more range. Unlike INT8's evenly spaced levels, FP8's levels are dense near zero "
        "and sparse far from it: Layer Lab draws them over a real layer.",
        (see("layer_lab", "Layer Lab: a real layer over FP8 E4M3's levels (one scale per tensor)",
             src=MINILM, t=FFN_OUT, fmt="fp8_e4m3", gran="tensor"),
         see("layer_lab", "Layer Lab: the same layer over FP8 E5M2's levels", src=MINILM, t=FFN_OUT,
             fmt="fp8_e5m2", gran="tensor"),
         see("formats", "Formats side by side: E4M3 and E5M2 among every format on that layer", fmt="fp8_e4m3",
             gran="tensor")),
        (Option("a", "Fixed point in 8 bits; Q4.4 and Q1.7", False,
                "Fixed-point formats have evenly spaced levels and no exponent; FP8 is floating point, with "
                "levels that get coarser as magnitude grows."),
         Option("b", "8-bit floating point; E4M3 (more precision) and E5M2 (more range)", True,
                "Right: the letters count exponent (E) and mantissa (M) bits. E4M3 reaches 448, E5M2 57344 "
                "(torch.finfo of float8_e4m3fn and float8_e5m2)."),
         Option("c", "Floating point with an 8-bit exponent; BF16 and TF32", False,
                "Those are 16- and 19-bit formats that share FP32's 8-bit exponent. FP8 is the whole number in "
                "8 bits."),
         Option("d", "8-bit integers with a float scale; symmetric and asymmetric INT8", False,
                "That is INT8 with a scale (and optionally a zero point): evenly spaced levels. FP8's levels are "
                "not evenly spaced.")),
        sources=("OCP 8-bit Floating Point Specification (OFP8)", "torch.finfo(torch.float8_e4m3fn / float8_e5m2)")),
    Question(
        "awq", 8, "What AWQ looks at",
        "What does AWQ (activation-aware weight quantization) take into account that simpler approaches ignore?",
        Kind.SINGLE,
        "AWQ looks at the activations: a weight column that multiplies a large input channel matters more to the "
        "output. It finds these salient channels on calibration data (about 1% of them matter most) and scales "
        "them up before rounding (searching the scale exponent alpha on a grid), so they lose less precision. On "
        "MiniLM, input channel 99 is the largest in almost every block.",
        (see("outliers", "Outlier channels: MiniLM's channel 99 and the salient 1% of a real layer",
             src=MINILM, t=KEY_5, ostat="max"),
         see("awq", "AWQ on that layer: the alpha search and its error",
             src=MINILM, t=KEY_5, fmt="int4", gran="group", gs=128)),
        (Option("a", "The magnitude of the weights alone", False,
                "That is what plain rounding and magnitude-based choices use. The AWQ paper found that picking "
                "channels by weight size protects little; picking them by activation size protects a lot."),
         Option("b", "The activations: input channels with large activations mark the salient weights", True,
                "Right: error in weight column j is multiplied by x_j in the output, so columns that meet large "
                "activations are the ones to protect."),
         Option("c", "The gradients of the training loss", False,
                "AWQ uses no gradients and no labels: a forward pass over calibration text gives the activation "
                "statistics it needs."),
         Option("d", "The memory bandwidth of the target GPU", False,
                "Bandwidth decides how fast a quantized model can decode, not which weights AWQ protects.")),
        sources=("AWQ, Lin et al. 2023, arXiv 2306.00978", "mit-han-lab/llm-awq auto_scale.py")),
    Question(
        "validate", 9, "The mandatory step",
        "Before a quantized model goes to production, which step can neither benchmarks nor predictions replace?",
        Kind.SINGLE,
        "Evaluating the quantized model on your own tasks and data, against the unquantized model, on your "
        "hardware: decisions flipped, task by task, not only an average. Everything else (papers, leaderboards, "
        "AI estimates) tells you what to test.",
        (MATRIX,),
        (Option("a", "Reading more benchmark tables for the same model", False,
                "More tables are more hypotheses: none of them was measured on your tasks."),
         Option("b", "Evaluating it on your own tasks and data against the unquantized model", True,
                "Right: only this observes your outcome. The cliffs page does it on a real model: scores, flipped "
                "decisions and margins per task."),
         Option("c", "Asking an AI tool to predict the accuracy drop", False,
                "A prediction made without your data is a hypothesis, not a result."),
         Option("d", "Re-running calibration with more samples", False,
                "More calibration may reduce the error, but it still does not tell you what happens on your "
                "tasks; you would have to evaluate that afterwards anyway."))),
    Question(
        "tradeoff", 10, "What quantization improves",
        "When serving language models, which trade-off does quantization mainly improve?",
        Kind.SINGLE,
        "Memory and bandwidth against accuracy. Fewer bits per weight mean a smaller model (more of it per GPU, "
        "room for KV cache, fewer GPUs) and fewer bytes read per generated token, which raises the decode speed "
        "bound, since decoding at small batch is limited by memory bandwidth. The price is some accuracy.",
        (MEMORY,),
        (Option("a", "Memory and bandwidth (cost, decode speed) in exchange for some accuracy", True,
                "Right: the Memory page shows the weights shrinking and the tokens/s bound rising per format."),
         Option("b", "Accuracy in exchange for speed", False,
                "Quantization does not raise accuracy: it approximates the weights, so accuracy stays the same at "
                "best and usually drops a little."),
         Option("c", "Training speed in exchange for model size", False,
                "Post-training quantization is applied after training and does not speed training up."),
         Option("d", "Compute-bound prefill speed, at no cost", False,
                "Prefill over long prompts is limited by arithmetic, which weight-only formats do not reduce; "
                "the gain is mostly in memory-bound decoding, and it is never free of accuracy cost."))),
    Question(
        "decode-bound", 10, "A decode bound, worked out",
        "Llama-3.1-8B has 8.03 billion parameters. Quantized to INT4 in groups of 128 with an fp16 scale and "
        "zero point per group, each weight costs 4.25 bits. At batch 1 every weight is read once per generated "
        "token. On an H100 SXM (memory bandwidth 3.35 TB/s), ignoring the KV cache, what is the upper bound on "
        "decode speed in tokens per second?",
        Kind.NUMBER,
        "Bytes per token = 8.03e9 × 4.25 / 8 = 4.27 GB; 3.35e12 B/s ÷ 4.27e9 B = about 785 tokens/s (bf16, at 16 "
        "bits, gives about 209). It is an upper bound, not a prediction: llama.cpp measured Q4_K_M 2.47× faster "
        "than F16 for a 3.27× smaller file. The Memory page's own number differs a little: it keeps the output "
        "layer (lm_head) at 16 bits and reads one row of the embedding table per token.",
        (see("memory", "Memory & bandwidth: the decode bound of Llama-3.1-8B on an H100 SXM, bf16 vs INT4 g128",
             mmodel="llama31_8b", mfmt="bf16,int4", mgpu="h100_sxm", mctx=0, mbatch=1, masym=1),),
        numeric=Numeric(785.0, 0.03, "tokens/s", 0.0, 100000.0, 1.0, (
            Trap(98.2, "That divides by 4.25 bits as if they were bytes: divide the bits by 8 first."),
            Trap(834.0, "That uses the nominal 4 bits; the scale and zero point add 32 bits per 128 weights, so "
                        "each weight really costs 4.25 bits."),
            Trap(209.0, "That is the bound at 16 bits (bf16), before quantization."))),
        sources=("NVIDIA H100 datasheet: 3.35 TB/s (SXM)", "llama.cpp tools/quantize README")),
    Question(
        "gptq-compute", 11, "GPTQ's hidden computation",
        "Why is 'post-training means no extra computation' misleading for GPTQ?",
        Kind.SINGLE,
        "GPTQ runs the model on calibration data to record each layer's inputs, builds a Hessian H = 2XXᵀ per "
        "layer, factorises its inverse, and quantizes column by column while updating the remaining columns to "
        "compensate. That is real compute and memory (the paper: about four GPU hours for a 175B model), paid once "
        "before deployment, on top of plain rounding's near-zero cost.",
        (GPTQ_PAGE, see("cliffs", "Per-task cliffs: time a GPTQ sweep against a plain-rounding one (press Run)",
                        cs="int4_g128,int4_g128_gptq", cq=40, crun=0)),
        (Option("a", "It is not misleading: GPTQ only rounds each weight to the nearest level", False,
                "That is round-to-nearest (RTN). GPTQ's point is to choose roundings that compensate each other's "
                "error, which takes calibration passes and per-layer linear algebra."),
         Option("b", "GPTQ needs calibration passes and per-layer second-order solves, which cost real compute",
                True, "Right: no training, but forward passes, Hessians and their inverses, layer by layer. The "
                      "GPTQ page times it on a real layer."),
         Option("c", "GPTQ secretly fine-tunes the model with backpropagation", False,
                "GPTQ uses no gradients and no loss over the training data: it solves a least-squares rounding "
                "problem per layer."),
         Option("d", "GPTQ models need extra computation for every token forever after", False,
                "The cost is paid once, at quantization time. Serving a GPTQ model costs what any INT4 model with "
                "group scales costs, given a kernel for it.")),
        sources=("GPTQ, Frantar et al. 2022, arXiv 2210.17323", "IST-DASLab/gptq gptq.py")),
    Question(
        "why-uneven", 12, "Why 2% here and 25% there",
        "On the same quantized model, one task drops 2% and another 25%. Which explanations fit? Select all that "
        "apply.",
        Kind.MULTI,
        "Quantization perturbs every output a little. A task whose decisions have wide margins (a coarse topic "
        "match) absorbs that; a task whose decisions hinge on small differences (a negation, a number, a code "
        "token, a maths step) flips many of them. Calibration data that misses a task's inputs makes it worse. "
        "The cliffs page shows the flips and the margins per task.",
        (see("cliffs", "Per-task cliffs: INT4 per-channel, the negation task's flipped decisions and margins",
             cfs="int4_ch", cft="negation", **CLIFFS),),
        (Option("a", "The fine task's decisions have thin margins, so small output errors flip them", True,
                "Right: the margin plots show decisions near zero flipping first; a fine task has many of them."),
         Option("b", "The calibration data represented one task's inputs and not the other's", True,
                "Right: methods that calibrate (GPTQ, AWQ) fit what they saw (AutoFP8 issue #35: English-only "
                "calibration hurt Traditional Chinese)."),
         Option("c", "The quantized model has fewer parameters for the harder task", False,
                "Both tasks run the same quantized weights; nothing is removed per task."),
         Option("d", "It is always just measurement noise", False,
                "Small task sets do swing by several points from noise (20-40 items), but a consistent 25-point "
                "drop on hundreds of items is real damage. Count flipped decisions, not only accuracy."),
         Option("e", "The harder task was quantized to fewer bits", False,
                "One model, one scheme: every task sees the same bits.")),
        sources=("intel/auto-round issue #2067", "neuralmagic/AutoFP8 issue #35", "AutoAWQ issue #475")),
    Question(
        "ai-plan", 13, "What an AI-drafted plan cannot replace",
        "An AI tool drafts a good benchmarking plan for your quantized model. What can it not substitute for?",
        Kind.SINGLE,
        "Running the plan: measurements on your model, your data and your hardware, and your team's judgement of "
        "which failures matter. A plan says what to measure; the results exist only after someone measures.",
        (MEASURED,),
        (Option("a", "Choosing which standard benchmarks to start from", False,
                "A draft can suggest sensible starting benchmarks; that is what it is good at."),
         Option("b", "Listing the metrics to collect (latency, throughput, task accuracy, flips)", False,
                "Listing metrics is drafting work, and an assistant does it well."),
         Option("c", "The measurements themselves on your model, data and hardware", True,
                "Right: on the Memory page the datasheet bound and this machine's measured timings differ; only "
                "measuring shows by how much."),
         Option("d", "Formatting the plan as a document", False,
                "Formatting is exactly the kind of task an assistant takes off your hands."))),
    Question(
        "gptq-bits", 14, "GPTQ's usual precision",
        "Which weight precision does GPTQ most commonly use?",
        Kind.SINGLE,
        "4-bit integer weights, usually in groups of 128 with an fp16 scale (and zero point) per group; 3-bit is "
        "also used. On LLaMA-7B, WikiText-2 perplexity goes from 5.68 (FP16) to 6.09 with 4-bit GPTQ, and to "
        "6.29 with plain 4-bit rounding. Activations stay in 16 bits: GPTQ is weight-only.",
        (see("formats", "Formats side by side: INT4 g128 among every scheme on a real layer",
             src=MINILM, t=FFN_OUT, fmt="int4", gran="group", gs=128, sym=0), GPTQ_PAGE),
        (Option("a", "FP8 for weights and activations", False,
                "FP8 (W8A8) is a different family, usually plain rounding with per-tensor or per-channel scales; "
                "GPTQ is weight-only and targets fewer bits."),
         Option("b", "4-bit integers with a scale per group of weights (3-bit also common)", True,
                "Right: INT4 g128 is the usual GPTQ checkpoint, about 4.25 bits per weight with its scales."),
         Option("c", "1-bit (binary) weights", False,
                "The GPTQ paper reaches 2-bit and ternary weights only with a clear quality loss; its usual "
                "setting is 4 bits (or 3), where the loss stays small."),
         Option("d", "16-bit weights, reordered for speed", False,
                "16 bits is the unquantized baseline; GPTQ's purpose is to go well below it.")),
        sources=("IST-DASLab/gptq README (LLaMA WikiText-2 perplexities)",)),
    Question(
        "cliff-risk", 15, "Why an untested cliff is dangerous",
        "Why is a quality cliff especially dangerous in a production system that was not tested thoroughly?",
        Kind.SINGLE,
        "Because it is silent: the aggregate metrics (perplexity, an average score, embedding cosine) stay "
        "reassuring, so nothing alarms, while one kind of request gets confidently wrong answers. Users of that "
        "task find it first, late, and the damage spreads before anyone connects it to quantization.",
        (MATRIX,),
        (Option("a", "It crashes the server, taking the service down", False,
                "A cliff does not crash anything; the model keeps answering. That is what makes it hard to see."),
         Option("b", "It hides behind averages that look fine, so wrong answers reach users unnoticed", True,
                "Right: the cliffs page shows the whole-model average beside the task that collapsed."),
         Option("c", "It makes latency spike, which breaks service-level objectives", False,
                "Quality and latency are separate: a cliff changes answers, not response times."),
         Option("d", "Perplexity monitoring catches it at once", False,
                "The opposite: perplexity can stay close to the original while a task collapses (AutoAWQ issue "
                "#475).")),
        sources=("AutoAWQ issue #475", "IST-DASLab/FP-Quant issue #24")),
)

QUIZ = Quiz(QUESTIONS)
