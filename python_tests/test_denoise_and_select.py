"""denoise_and_select: the same results as denoise_step + select_transfer, commit in place,
errors before anything is written."""

import pytest
import torch

import dllm_kernels as dk

from test_denoise_step import make


@pytest.mark.parametrize("kw", [
    {"num_transfer": 3}, {"threshold": 0.1}, {"factor": 1.0}, {"probability": 0.5},
    {"num_transfer": 2, "temperature": 1.0, "top_p": 0.9, "confidence": "margin"},
    {"threshold": -3.0, "strict": True, "confidence": "neg_entropy", "shift_logits": True},
], ids=str)
@pytest.mark.parametrize("commit", [False, True])
def test_matches_separate_calls(device, gen, kw, commit):
    logits, x, mask_id = make(3, 33, 500, device, gen)
    select_keys = ("num_transfer", "threshold", "factor", "probability", "strict")
    dkw = {k: v for k, v in kw.items() if k not in select_keys}
    skw = {k: v for k, v in kw.items() if k in select_keys}
    x0, conf = dk.denoise_step(logits, x, mask_id, seed=42, offset=3, **dkw)
    transfer = dk.select_transfer(conf, seed=42, offset=3, **skw)
    want_x = x.clone()
    want_x[transfer] = x0[transfer]
    xx = x.clone()
    got = dk.denoise_and_select(logits, xx, mask_id, seed=42, offset=3, commit=commit, **kw)
    assert torch.equal(got[0], x0) and torch.equal(got[1], conf) and torch.equal(got[2], transfer)
    assert torch.equal(xx, want_x if commit else x)


def test_per_row_k_tensor(device, gen):
    logits, x, mask_id = make(3, 20, 100, device, gen, p_mask=1.0)
    k = torch.tensor([1, 5, 0], device=device)
    _, _, transfer = dk.denoise_and_select(logits, x.clone(), mask_id, num_transfer=k)
    assert transfer.sum(1).tolist() == [1, 5, 0]


def test_opcheck(device, gen):
    logits, x, mask_id = make(2, 9, 64, device, gen)
    args = (logits, x.clone(), mask_id, 1.0, 0, 1.0, "top_k_first", "prob", "raw", False, None,
            "num_transfer", torch.tensor([2, 3], device=device), 0.0, False, True, 5, 0)
    torch.library.opcheck(torch.ops.dllm_kernels.denoise_and_select, args)


@pytest.mark.parametrize("impl", ["native", "public"])
def test_bad_selection_writes_nothing(device, gen, impl):
    logits, x, mask_id = make(2, 9, 64, device, gen)
    before = x.clone()
    with pytest.raises(RuntimeError, match=r"denoise_and_select: .*(exactly one selection rule|factor must be > 0)"):
        if impl == "native":
            torch.ops.dllm_kernels.denoise_and_select(
                logits, x, mask_id, 0.0, 0, 1.0, "top_k_first", "prob", "raw", False, None,
                "factor", None, 0.0, False, True, 0, 0)
        else:
            dk.denoise_and_select(logits, x, mask_id, num_transfer=1, threshold=0.5, commit=True)
    assert torch.equal(x, before)
