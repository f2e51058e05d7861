"""Schedule helpers: Dream's timestep-ratio schedule, by hand and as a whole block."""

import pytest
import torch

from dllm_kernels import schedules


def test_dream_by_hand():
    mask = torch.zeros(2, 100, dtype=torch.bool)
    mask[0, :64] = True
    mask[1, :36] = True  # mean masked = 50
    t = torch.linspace(1, 1e-3, 5)
    assert schedules.dream_num_transfer(mask, 0, 4) == int(50 * (1 - float(t[1] / t[0])))
    assert schedules.dream_num_transfer(mask, 3, 4) == 50  # last step: all remaining


def test_dream_block_commits_everything():
    """Run the schedule over a block, committing k per step: nothing is left masked."""
    L, steps = 64, 8
    mask = torch.ones(1, L, dtype=torch.bool)
    for step in range(steps):
        k = schedules.dream_num_transfer(mask, step, steps)
        idx = mask[0].nonzero()[:k, 0]
        mask[0, idx] = False
    assert not bool(mask.any())


def test_dream_bad_step():
    with pytest.raises(ValueError, match="step must be in"):
        schedules.dream_num_transfer(torch.ones(1, 4, dtype=torch.bool), 4, 4)
