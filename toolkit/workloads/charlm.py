"""A small character-level transformer language model (GPT-style, as in nanoGPT's
shakespeare_char: Radford et al. 2019 / Karpathy's nanoGPT, pre-LayerNorm blocks).

Causal self-attention is written out (``q k^T / sqrt(d)``, a causal mask, softmax) rather than
calling ``F.scaled_dot_product_attention``: torch.func has no batching rule for the fused CPU
kernel and falls back to a slow per-example loop under ``vmap``. No dropout, so the forward pass
is deterministic. Loss: cross-entropy over every position, mean over batch and positions.

Data: a UTF-8 text file the user gives (vocabulary = its sorted distinct characters; the last
``test_fraction`` of the text is the test split; non-overlapping windows of ``context`` + 1
characters give inputs and next-character targets), or ``synthetic=True`` for random tokens.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from toolkit.checks import ConfigError, check_int
from toolkit.limits import check_memory
from toolkit.workloads.base import Workload, seeded_model

__all__ = ["CharTransformer", "charlm", "sequence_cross_entropy"]


class CausalSelfAttention(nn.Module):
    def __init__(self, d_model: int, n_head: int, context: int) -> None:
        super().__init__()
        self.n_head = n_head
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        mask = torch.ones(context, context, dtype=torch.bool).triu(1)  # True above the diagonal
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        *batch, t, d = x.shape
        heads = (*batch, t, self.n_head, d // self.n_head)
        q, k, v = (z.reshape(heads).transpose(-3, -2) for z in self.qkv(x).split(d, dim=-1))
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(d // self.n_head)
        scores = scores.masked_fill(self.mask[:t, :t], float("-inf"))
        out = scores.softmax(dim=-1) @ v  # [..., heads, t, head_dim]
        return self.proj(out.transpose(-3, -2).reshape(*batch, t, d))


class Block(nn.Module):
    def __init__(self, d_model: int, n_head: int, context: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_head, context)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class CharTransformer(nn.Module):
    """Token + learned position embeddings, ``n_layer`` pre-LN blocks, LayerNorm, linear head.

    Input [B, T] token ids (T <= context); output logits [B, T, vocab_size].
    """

    def __init__(
        self, vocab_size: int, context: int, d_model: int = 128, n_head: int = 4, n_layer: int = 2
    ) -> None:
        super().__init__()
        if d_model % n_head:
            raise ConfigError(
                "d_model", f"d_model ({d_model}) must be divisible by n_head ({n_head})"
            )
        self.tok = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Embedding(context, d_model)
        self.blocks = nn.Sequential(*(Block(d_model, n_head, context) for _ in range(n_layer)))
        self.ln = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        t = idx.shape[-1]
        h = self.tok(idx) + self.pos.weight[:t]
        return self.head(self.ln(self.blocks(h)))


def sequence_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over all positions: logits [B, T, V], target [B, T]."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))


def _windows(ids: np.ndarray, context: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-overlapping windows: x = ids[i : i + T], y = ids[i + 1 : i + T + 1], i = 0, T, 2T..."""
    n = (len(ids) - 1) // context
    if n < 1:
        raise ConfigError(
            "context", f"context: text split too short ({len(ids)} chars) for context {context}"
        )
    x = ids[: n * context].reshape(n, context)
    y = ids[1 : n * context + 1].reshape(n, context)
    return torch.from_numpy(x.copy()), torch.from_numpy(y.copy())


def charlm(
    path: str | Path | None = None,
    *,
    synthetic: bool = False,
    context: int = 64,
    d_model: int = 128,
    n_head: int = 4,
    n_layer: int = 2,
    test_fraction: float = 0.1,
    n_train: int | None = None,
    n_test: int | None = None,
    vocab_size: int = 32,
    data_seed: int = 0,
    batch_size: int = 32,
    lr: float = 0.3,
) -> Workload:
    """Character-level transformer LM on the text file ``path`` (or random tokens if
    ``synthetic``; ``vocab_size`` applies only then). ``n_train``/``n_test`` keep the first
    windows of each split (synthetic defaults: 128 and 32)."""
    context = check_int("context", context)
    batch_size = check_int("batch_size", batch_size)
    for name, value in [("d_model", d_model), ("n_head", n_head), ("n_layer", n_layer)]:
        check_int(name, value)
    if d_model % n_head:
        raise ConfigError("d_model", f"d_model ({d_model}) must be divisible by n_head ({n_head})")
    if n_train is not None:
        n_train = check_int("n_train", n_train)
    if n_test is not None:
        n_test = check_int("n_test", n_test)
    if synthetic and path is not None:
        raise ConfigError(
            "path", "path: give either path= (a text file) or synthetic=True, not both"
        )
    if synthetic:
        vocab_size = check_int("vocab_size", vocab_size)
        gen = torch.Generator().manual_seed(data_seed)
        n_train, n_test = n_train or 128, n_test or 32
        what = f"{n_train + n_test} synthetic sequences of {context + 1} int64 tokens"
        check_memory("n_train", what, 2 * 8 * (context + 1) * (n_train + n_test))
        x_train = torch.randint(0, vocab_size, (n_train, context + 1), generator=gen)
        x_test = torch.randint(0, vocab_size, (n_test, context + 1), generator=gen)
        (x_train, y_train), (x_test, y_test) = (
            (x_train[:, :-1], x_train[:, 1:]),
            (x_test[:, :-1], x_test[:, 1:]),
        )
        info = {
            "dataset": "synthetic",
            "synthetic": True,
            "vocab": None,
            "note": "uniform random tokens: for shape and speed checks only (the best loss is "
            "log(vocab_size)). Pass path= a UTF-8 text file for real data.",
        }
    else:
        if path is None:
            raise ConfigError(
                "path",
                "path: charlm needs a UTF-8 text file (e.g. Tiny Shakespeare's input.txt), "
                "or synthetic=True",
            )
        file = Path(path)
        if not file.is_file():
            raise FileNotFoundError(f"path: text file not found: {file}")
        if not 0 < test_fraction < 1:
            raise ConfigError(
                "test_fraction", f"test_fraction must be in (0, 1), got {test_fraction}"
            )
        text = file.read_text(encoding="utf-8")
        vocab = "".join(sorted(set(text)))
        lookup = {c: i for i, c in enumerate(vocab)}
        ids = np.fromiter((lookup[c] for c in text), dtype=np.int64, count=len(text))
        cut = int(len(ids) * (1 - test_fraction))
        x_train, y_train = _windows(ids[:cut], context)
        x_test, y_test = _windows(ids[cut:], context)
        x_train, y_train = x_train[:n_train], y_train[:n_train]
        x_test, y_test = x_test[:n_test], y_test[:n_test]
        vocab_size = len(vocab)
        info = {"dataset": str(file), "synthetic": False, "vocab": vocab}
    info.update(vocab_size=vocab_size, context=context)

    def build() -> nn.Module:
        return CharTransformer(vocab_size, context, d_model, n_head, n_layer)

    return Workload(
        name="charlm",
        make_model=lambda seed: seeded_model(seed, build),
        x_train=x_train.contiguous(),
        y_train=y_train.contiguous(),
        x_test=x_test.contiguous(),
        y_test=y_test.contiguous(),
        loss=sequence_cross_entropy,
        batch_size=batch_size,
        lr=float(lr),
        accuracy=True,
        info=info,
        steps=1000,
    )
