"""select_transfer: which positions commit (top-k / threshold / factor / probability /
entropy_bound)."""

from __future__ import annotations

import torch

from .. import ops, reference
from .core import Case, Inputs, OpSpec


def _select_inputs(params: dict, device: torch.device, gen: torch.Generator) -> Inputs:
    B, L = int(params["B"]), int(params["L"])
    conf = torch.rand(B, L, generator=gen)
    if params["rule"] == "entropy_bound":
        conf = -conf * 5  # neg_entropy confidences: -H, H in [0, 5)
    conf[torch.rand(B, L, generator=gen) < 0.25] = float("-inf")
    out = {"conf": conf.to(device)}
    rule = params["rule"]
    out[rule] = params["value"]
    if rule == "probability":
        out["seed"] = 7
    return out


SELECT_TRANSFER = OpSpec(
    name="select_transfer",
    op=ops.select_transfer,
    reference=reference.select_transfer,
    make_inputs=_select_inputs,
    cases=(
        Case("B=1 L=32 num_transfer=4", {"B": 1, "L": 32, "rule": "num_transfer", "value": 4}),
        Case("B=64 L=256 threshold=0.9", {"B": 64, "L": 256, "rule": "threshold", "value": 0.9}),
        Case(
            "B=64 L=4096 num_transfer=64", {"B": 64, "L": 4096, "rule": "num_transfer", "value": 64}
        ),
        Case("B=64 L=256 factor=1", {"B": 64, "L": 256, "rule": "factor", "value": 1.0}),
        Case(
            "B=8 L=256 entropy_bound=2", {"B": 8, "L": 256, "rule": "entropy_bound", "value": 2.0}
        ),
    ),
    outputs=lambda result, inputs: (result,),
    bytes_moved=lambda inputs: inputs["conf"].numel() * 5,
    doc="which positions commit: top-k / threshold / factor / probability / entropy_bound",
)
