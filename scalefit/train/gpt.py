"""A GPT-2-style decoder, readable in one sitting (after nanoGPT's model.py).

Pre-LN blocks, GELU MLP (4x), learned positions, causal attention through
``F.scaled_dot_product_attention``, optional QK-norm (parameter-free RMSNorm on q and k per
head), LM head tied to the token embedding by default. q, k, v and the output projection are
separate Linear layers so that the weight-norm probe and AdamH see one matrix per role.
Parameter counts match :func:`scalefit.grids.spec.count_params` (tested).

Examples
--------
>>> import torch
>>> model = GPT(GPTConfig(d_model=64, n_layer=2, n_head=2))
>>> logits, loss = model(torch.zeros(1, 8, dtype=torch.long), torch.zeros(1, 8, dtype=torch.long))
>>> logits.shape
torch.Size([1, 8, 256])
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["GPTConfig", "GPT", "Block", "Attention", "MLP"]


@dataclass
class GPTConfig:
    """The architecture of a :class:`GPT` (a ladder size, plus the corpus's vocabulary).

    Attributes
    ----------
    vocab_size : int
        Vocabulary size (256: the byte-level default corpus).
    seq_len : int
        Context length (learned positions).
    n_layer : int
        Transformer blocks.
    n_head : int
        Attention heads (must divide ``d_model``).
    d_model : int
        Residual width.
    mlp_ratio : int
        MLP hidden width over ``d_model``.
    bias : bool
        Biases in Linear layers and LayerNorms.
    qk_norm : bool
        Parameter-free RMSNorm on q and k per head.
    tie_embeddings : bool
        LM head tied to the token embedding.
    init_std : float
        Init std of every Linear and Embedding weight; residual projections get
        ``init_std / sqrt(2 n_layer)``.
    """
    vocab_size: int = 256      # byte-level default corpus
    seq_len: int = 128         # context length (learned positions)
    n_layer: int = 2
    n_head: int = 2
    d_model: int = 64
    mlp_ratio: int = 4         # GPT-2's 4x MLP
    bias: bool = False         # nanoGPT: no biases is as good and a bit faster
    qk_norm: bool = False      # RMSNorm on q, k: stabilises attention logits at high LR
    tie_embeddings: bool = True  # GPT-2 ties the LM head to the token embedding
    init_std: float = 0.02     # GPT-2 init; residual projections get / sqrt(2 n_layer)


class Attention(nn.Module):
    """Causal multi-head self-attention with separate q, k, v and output projections.

    Parameters
    ----------
    c : GPTConfig
        The architecture.
    """

    def __init__(self, c: GPTConfig):
        super().__init__()
        self.n_head, self.qk_norm = c.n_head, c.qk_norm
        self.q = nn.Linear(c.d_model, c.d_model, bias=c.bias)
        self.k = nn.Linear(c.d_model, c.d_model, bias=c.bias)
        self.v = nn.Linear(c.d_model, c.d_model, bias=c.bias)
        self.o = nn.Linear(c.d_model, c.d_model, bias=c.bias)

    def forward(self, x):
        """Attend over ``x`` ([batch, time, d_model]); returns the same shape."""
        B, T, C = x.shape
        q, k, v = (lin(x).view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
                   for lin in (self.q, self.k, self.v))
        if self.qk_norm:
            q, k = F.rms_norm(q, (q.size(-1),)), F.rms_norm(k, (k.size(-1),))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    """The block's feed-forward part: Linear, GELU (tanh form), Linear.

    Parameters
    ----------
    c : GPTConfig
        The architecture.
    """

    def __init__(self, c: GPTConfig):
        super().__init__()
        self.fc = nn.Linear(c.d_model, c.mlp_ratio * c.d_model, bias=c.bias)
        self.proj = nn.Linear(c.mlp_ratio * c.d_model, c.d_model, bias=c.bias)

    def forward(self, x):
        """Apply the MLP to ``x`` ([batch, time, d_model]); returns the same shape."""
        return self.proj(F.gelu(self.fc(x), approximate="tanh"))


class Block(nn.Module):
    """A pre-LN transformer block: ``x + attn(ln1(x))``, then ``+ mlp(ln2(x))``.

    Parameters
    ----------
    c : GPTConfig
        The architecture.
    """

    def __init__(self, c: GPTConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(c.d_model, bias=c.bias)
        self.attn = Attention(c)
        self.ln2 = nn.LayerNorm(c.d_model, bias=c.bias)
        self.mlp = MLP(c)

    def forward(self, x):
        """Apply the block to ``x`` ([batch, time, d_model]); returns the same shape."""
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """The decoder: embeddings, ``n_layer`` blocks, final LayerNorm, LM head.

    Parameters
    ----------
    c : GPTConfig
        The architecture.

    Attributes
    ----------
    config : GPTConfig
        The architecture.
    lm_head : torch.nn.Linear or None
        The untied LM head; None when tied to ``wte``.
    """

    def __init__(self, c: GPTConfig):
        super().__init__()
        self.config = c
        self.wte = nn.Embedding(c.vocab_size, c.d_model)
        self.wpe = nn.Embedding(c.seq_len, c.d_model)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.n_layer))
        self.ln_f = nn.LayerNorm(c.d_model, bias=c.bias)
        self.lm_head = None if c.tie_embeddings else nn.Linear(c.d_model, c.vocab_size, bias=False)
        self.apply(self._init)
        for b in self.blocks:  # GPT-2: scale residual-branch outputs by 1/sqrt(2 n_layer)
            for w in (b.attn.o.weight, b.mlp.proj.weight):
                nn.init.normal_(w, 0.0, c.init_std / math.sqrt(2 * c.n_layer))

    def _init(self, m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, self.config.init_std)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, idx, targets=None):
        """Logits, and the mean cross-entropy when targets are given.

        Parameters
        ----------
        idx : torch.Tensor
            Token ids, int64 [batch, time] with time <= ``seq_len``.
        targets : torch.Tensor, optional
            Next-token ids of the same shape.

        Returns
        -------
        tuple
            ``(logits, loss)``: logits [batch, time, vocab_size], loss a float32 scalar (None
            without targets).
        """
        T = idx.size(1)
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        for b in self.blocks:
            x = b(x)
        x = self.ln_f(x)
        logits = self.lm_head(x) if self.lm_head is not None else F.linear(x, self.wte.weight)
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss

    # -- parameter roles, shared by the optimizers and the probe ----------------------------
    def hidden_matrices(self) -> list[tuple[str, nn.Parameter]]:
        """Weights of the Linear layers inside the blocks (q, k, v, o, fc, proj).

        Returns
        -------
        list of tuple
            ``(name, parameter)`` pairs: the matrices AdamH keeps on spheres and the probe
            aggregates.
        """
        return [(n, p) for n, p in self.named_parameters()
                if n.startswith("blocks.") and p.dim() == 2]

    def count_params(self) -> tuple[int, int]:
        """(non-embedding, total): non-embedding excludes wte, wpe and the LM head.

        Returns
        -------
        tuple of int
            As :func:`scalefit.grids.spec.count_params` computes without building the model.
        """
        total = sum(p.numel() for p in self.parameters())
        emb = self.wte.weight.numel() + self.wpe.weight.numel()
        if self.lm_head is not None:
            emb += self.lm_head.weight.numel()
        return total - emb, total
