"""The temporal encoder (paper eqs. 2-3): two temporal blocks, each an MHSA over the concatenated right and left
sequences (2T tokens), two MHCA (each hand's sequence attends to that block's global feature sequence) and a
feed-forward block that reduces the width for the next block. Residual connections with pre-normalisation."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from core_model.network.attention import MultiHeadAttention, sinusoidal_encoding
from core_model.network.config import STCNetConfig


@dataclasses.dataclass
class TemporalOutput:
    """hands: [B, T, 2, C3] refined features (0 = right, 1 = left); mhsa: [B, K, heads, 2T, 2T] (tokens: right
    frames 0..T-1, then left frames); mhca: [B, K, 2, heads, T, T] (query hand, frame -> global frame), or None
    without MHCA. K = 2 blocks."""

    hands: torch.Tensor
    mhsa: torch.Tensor
    mhca: torch.Tensor | None


class FeedForward(nn.Module):
    """Width ``dim`` -> ``out_dim``; a linear skip carries the residual across the width change."""

    def __init__(self, dim: int, hidden: int, out_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, out_dim),
                                 nn.Dropout(dropout))
        self.skip = nn.Identity() if out_dim == dim else nn.Linear(dim, out_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.net(self.norm(x))


class TemporalBlock(nn.Module):
    """tokens [B, 2T, dim] (right then left) and global sequence [B, T, global_dim] -> tokens [B, 2T, out_dim]."""

    def __init__(self, dim: int, global_dim: int, out_dim: int, config: STCNetConfig) -> None:
        super().__init__()
        self.sa_norm = nn.LayerNorm(dim)
        self.mhsa = MultiHeadAttention(dim, dim, config.attention_dim, config.heads, config.dropout)
        self.sa_dropout = nn.Dropout(config.dropout)
        self.cross_attention = config.cross_attention
        if self.cross_attention:
            # Two MHCA, one per hand side (eq. 3 is applied to each hand with its own weights).
            self.ca_norm = nn.ModuleList([nn.LayerNorm(dim) for _ in range(2)])
            self.global_norm = nn.ModuleList([nn.LayerNorm(global_dim) for _ in range(2)])
            self.mhca = nn.ModuleList([MultiHeadAttention(dim, global_dim, config.attention_dim, config.heads,
                                                          config.dropout) for _ in range(2)])
            self.ca_dropout = nn.Dropout(config.dropout)
        self.ffn = FeedForward(dim, max(1, round(config.ffn_ratio * dim)), out_dim, config.dropout)

    def forward(self, tokens: torch.Tensor, global_seq: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        normed = self.sa_norm(tokens)
        attended, sa_weights = self.mhsa(normed, normed)
        tokens = tokens + self.sa_dropout(attended)
        ca_weights = None
        if self.cross_attention:
            frames = tokens.shape[1] // 2
            sides, weights = [], []
            for h in range(2):
                seq = tokens[:, h * frames:(h + 1) * frames]
                attended, w = self.mhca[h](self.ca_norm[h](seq), self.global_norm[h](global_seq))
                sides.append(seq + self.ca_dropout(attended))
                weights.append(w)
            tokens = torch.cat(sides, dim=1)
            ca_weights = torch.stack(weights, dim=1)                                    # [B, 2, h, T, T]
        return self.ffn(tokens), sa_weights, ca_weights


class TemporalEncoder(nn.Module):
    """Block 1 at width C1 attends to F_1^global, block 2 at C2 to F_2^global, output width C3 = out_dim."""

    def __init__(self, config: STCNetConfig) -> None:
        super().__init__()
        c1, c2 = config.channels
        # Hand-side embedding (0 = right, 1 = left); temporal positions are sinusoidal (no parameters, any T).
        self.side_embedding = nn.Parameter(torch.randn(2, c1) * 0.02)
        self.blocks = nn.ModuleList([TemporalBlock(c1, c1, c2, config), TemporalBlock(c2, c2, config.out_dim, config)])
        self.norm = nn.LayerNorm(config.out_dim)

    def forward(self, hands: torch.Tensor, global1: torch.Tensor, global2: torch.Tensor) -> TemporalOutput:
        """hands [B, T, 2, C1], global1 [B, T, C1], global2 [B, T, C2]."""
        batch, frames, _, c1 = hands.shape
        position = sinusoidal_encoding(frames, c1, device=hands.device, dtype=hands.dtype)
        tokens = hands + position[None, :, None, :] + self.side_embedding
        tokens = tokens.transpose(1, 2).reshape(batch, 2 * frames, c1)                 # Concat(F^right, F^left)
        sa_all, ca_all = [], []
        for block, global_seq in zip(self.blocks, (global1, global2)):
            pos = sinusoidal_encoding(frames, global_seq.shape[-1], device=hands.device, dtype=hands.dtype)
            tokens, sa, ca = block(tokens, global_seq + pos)
            sa_all.append(sa)
            ca_all.append(ca)
        out = self.norm(tokens).reshape(batch, 2, frames, -1).transpose(1, 2)
        mhca = torch.stack(ca_all, dim=1) if ca_all[0] is not None else None
        return TemporalOutput(hands=out, mhsa=torch.stack(sa_all, dim=1), mhca=mhca)
