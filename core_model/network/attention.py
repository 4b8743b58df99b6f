"""Multi-head attention that returns every head's weights (for the MHSA/MHCA heatmaps), with an inner width of its
own (the query and key/value sources may have different widths), and the sinusoidal temporal encoding of [46]."""

from __future__ import annotations

import math

import torch
from torch import nn


class MultiHeadAttention(nn.Module):
    """query [B, Lq, Dq] attends to source [B, Lk, Dk] -> (out [B, Lq, Dq], weights [B, heads, Lq, Lk]).

    The returned weights are the softmax rows (each sums to 1) before attention dropout.
    """

    def __init__(self, query_dim: int, source_dim: int, inner_dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if inner_dim % heads:
            raise ValueError(f"inner_dim: {inner_dim} is not divisible by heads={heads}")
        self.heads = heads
        self.head_dim = inner_dim // heads
        self.q = nn.Linear(query_dim, inner_dim)
        self.k = nn.Linear(source_dim, inner_dim)
        self.v = nn.Linear(source_dim, inner_dim)
        self.out = nn.Linear(inner_dim, query_dim)
        self.dropout = nn.Dropout(dropout)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.heads, self.head_dim)).transpose(1, 2)             # [B, h, L, d]

    def forward(self, query: torch.Tensor, source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q, k, v = self._split(self.q(query)), self._split(self.k(source)), self._split(self.v(source))
        weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(self.head_dim), dim=-1)
        mixed = (self.dropout(weights) @ v).transpose(1, 2).flatten(2)
        return self.out(mixed), weights


def sinusoidal_encoding(length: int, dim: int, *, device: torch.device | None = None,
                        dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """[length, dim] position encoding of Vaswani et al.: any window length T works without retraining."""
    position = torch.arange(length, device=device, dtype=torch.float64)[:, None]
    frequency = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float64) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim, device=device, dtype=torch.float64)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)[:, : dim // 2]
    return table.to(dtype)
