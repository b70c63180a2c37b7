"""Rebuild a byte-level BPE tokenizer (GPT-2 style, Radford et al. 2019) from GGUF metadata with `tokenizers`.

GGUF stores the vocabulary (`tokenizer.ggml.tokens`, already in GPT-2's byte-to-unicode alphabet), the merge list
and token types (3 = control). SmolLM2's pre-tokenizer (`tokenizer.ggml.pre == "smollm"`) splits every digit on
its own before the GPT-2 regex, matching its Hugging Face tokenizer.json; no BOS token is added.
"""

from __future__ import annotations

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

_CONTROL = 3  # llama.cpp token type for control/special tokens


def _field(reader, key: str):
    if key not in reader.fields:
        raise ValueError(f"GGUF file lacks metadata {key!r}")
    return reader.fields[key].contents()


def tokenizer_from_gguf(reader) -> Tokenizer:
    """A `tokenizers.Tokenizer` for a GGUF whose `tokenizer.ggml.model` is `gpt2` (byte-level BPE).

    reader: a `gguf.GGUFReader`. ValueError for other tokenizer models or pre-tokenizers."""
    kind = _field(reader, "tokenizer.ggml.model")
    if kind != "gpt2":
        raise ValueError(f"unsupported tokenizer.ggml.model {kind!r}; allowed: ['gpt2']")
    pre = _field(reader, "tokenizer.ggml.pre")
    if pre != "smollm":
        raise ValueError(f"unsupported tokenizer.ggml.pre {pre!r}; allowed: ['smollm']")
    tokens: list[str] = list(_field(reader, "tokenizer.ggml.tokens"))
    types: list[int] = list(_field(reader, "tokenizer.ggml.token_type"))
    merges = [tuple(m.split(" ")) for m in _field(reader, "tokenizer.ggml.merges")]
    if any(len(m) != 2 for m in merges):
        raise ValueError("malformed merge entry in GGUF metadata")

    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    specials = [AddedToken(t, special=True, normalized=False) for t, ty in zip(tokens, types) if ty == _CONTROL]
    tok.add_special_tokens(specials)
    return tok
