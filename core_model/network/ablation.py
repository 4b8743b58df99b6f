"""The rows of the paper's ablation study (Table 2, plus "w/o MHCA") as switches.

Table 2: "TE" is the temporal encoder, an architecture switch; "PC" (interpenetration constraint, the
interpenetration loss eq. 6) and "TC" (temporal constraint, the smooth loss eq. 5) are training-loss switches: they
do not change the network, so they live here beside the network config for the trainer to read, not in
``STCNetConfig``.
"""

from __future__ import annotations

import dataclasses

from core_model.network.config import STCNetConfig


@dataclasses.dataclass(frozen=True)
class Ablation:
    """One row: network switches (temporal_encoder, cross_attention) and loss switches (interpenetration_loss =
    PC, smooth_loss = TC)."""

    name: str
    temporal_encoder: bool
    cross_attention: bool
    interpenetration_loss: bool
    smooth_loss: bool

    def apply(self, config: STCNetConfig) -> STCNetConfig:
        """``config`` with this row's network switches."""
        return dataclasses.replace(config, temporal_encoder=self.temporal_encoder,
                                   cross_attention=self.cross_attention)


ABLATIONS: dict[str, Ablation] = {a.name: a for a in (
    Ablation("baseline", temporal_encoder=False, cross_attention=False, interpenetration_loss=False,
             smooth_loss=False),
    Ablation("baseline+te", temporal_encoder=True, cross_attention=True, interpenetration_loss=False,
             smooth_loss=False),
    Ablation("baseline+te+pc", temporal_encoder=True, cross_attention=True, interpenetration_loss=True,
             smooth_loss=False),
    Ablation("baseline+te+pc+tc", temporal_encoder=True, cross_attention=True, interpenetration_loss=True,
             smooth_loss=True),
    # The full model without the two MHCA of each temporal block (the global features are then unused).
    Ablation("no-mhca", temporal_encoder=True, cross_attention=False, interpenetration_loss=True, smooth_loss=True),
)}
FULL_MODEL = "baseline+te+pc+tc"


def ablation(name: str) -> Ablation:
    if name not in ABLATIONS:
        raise ValueError(f"ablation: expected one of {sorted(ABLATIONS)}, got {name!r}")
    return ABLATIONS[name]
