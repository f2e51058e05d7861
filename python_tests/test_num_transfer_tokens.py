"""num_transfer_tokens: kernel vs reference on random masks, odd and strided shapes, opcheck,
errors."""

import numpy as np
import pytest
import torch

import dllm_kernels as dk
from dllm_kernels import reference

SHAPES = [(1, 1), (1, 7), (2, 32), (3, 33), (4, 320), (2, 4099), (0, 8), (3, 0)]


def make(shape, device, gen, p=0.7):
    return (torch.rand(shape, generator=gen) < p).to(device)


@pytest.mark.parametrize("steps", [1, 3, 8, 64, 1000])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_matches_reference(device, gen, shape, steps):
    mask = make(shape, device, gen)
    got = dk.num_transfer_tokens(mask, steps)
    want = reference.num_transfer_tokens(mask, steps)
    assert got.dtype == torch.int64 and got.device == mask.device and got.shape == (shape[0], steps)
    assert torch.equal(got, want)


def test_schedule_properties(device, gen):
    """Each row commits exactly its masked count; steps differ by at most one, larger first."""
    mask = make((6, 257), device, gen, p=0.5)
    n = dk.num_transfer_tokens(mask, 7).cpu()
    assert torch.equal(n.sum(1), mask.sum(1).cpu())
    assert int((n.max(1).values - n.min(1).values).max()) <= 1
    assert bool((n[:, :-1] >= n[:, 1:]).all())


def test_strided_mask(device, gen):
    """x[:, start:end] == mask_id style slices and transposed masks are read in place."""
    full = make((4, 150), device, gen)
    for mask in (full[:, 40:73], full.t()[:33], full[:, ::3]):
        assert not mask.is_contiguous()
        assert torch.equal(dk.num_transfer_tokens(mask, 5), reference.num_transfer_tokens(mask, 5))


def test_large_batch_rows(device, gen):
    mask = make((70_000, 5), device, gen)
    assert torch.equal(dk.num_transfer_tokens(mask, 3), reference.num_transfer_tokens(mask, 3))


def test_non_canonical_bool_bytes(device):
    """A bool tensor viewed from bytes other than 0/1 counts every nonzero byte as masked."""
    mask = torch.tensor([[2, 0, 255, 1]], dtype=torch.uint8).view(torch.bool).to(device)
    assert dk.num_transfer_tokens(mask, 2).tolist() == [[2, 1]]
    assert reference.num_transfer_tokens(mask, 2).tolist() == [[2, 1]]


@pytest.mark.parametrize("steps", [np.int64(4), torch.tensor(4)], ids=["numpy", "tensor"])
def test_integer_like_steps(device, gen, steps):
    mask = make((3, 33), device, gen)
    assert torch.equal(dk.num_transfer_tokens(mask, steps), reference.num_transfer_tokens(mask, 4))


@pytest.mark.native
def test_opcheck(device, gen):
    torch.library.opcheck(
        torch.ops.dllm_kernels.num_transfer_tokens, (make((3, 33), device, gen), 4)
    )


def test_torch_compile_fullgraph(gen):
    mask = make((2, 17), "cpu", gen)
    got = torch.compile(dk.num_transfer_tokens, fullgraph=True, backend="eager")(mask, 4)
    assert torch.equal(got, reference.num_transfer_tokens(mask, 4))


BAD = {
    "mask float": (lambda m, s: (m.float(), s), r"num_transfer_tokens: mask_index must have dtype"),
    "mask int64": (lambda m, s: (m.long(), s), r"num_transfer_tokens: mask_index must have dtype"),
    "mask 1-D": (lambda m, s: (m[0], s), r"num_transfer_tokens: mask_index must be 2-D"),
    "mask 3-D": (lambda m, s: (m[None], s), r"num_transfer_tokens: mask_index must be 2-D"),
    "steps 0": (lambda m, s: (m, 0), r"num_transfer_tokens: steps must be >= 1"),
    "steps -3": (lambda m, s: (m, -3), r"num_transfer_tokens: steps must be >= 1"),
}
# Python-level argument types: the raw torch.ops schema rejects these itself (torch's message).
BAD_PY = {
    "steps float": (lambda m, s: (m, 4.0), r"num_transfer_tokens: steps must be an int"),
    "steps bool": (lambda m, s: (m, True), r"num_transfer_tokens: steps must be an int"),
    "steps str": (lambda m, s: (m, "4"), r"num_transfer_tokens: steps must be an int"),
}
IMPLS = {
    "native": lambda *a: torch.ops.dllm_kernels.num_transfer_tokens(*a),
    "public": lambda *a: dk.num_transfer_tokens(*a),
    "reference": lambda *a: reference.num_transfer_tokens(*a),
}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", BAD)
def test_bad_input(device, gen, case, impl):
    make_bad, pattern = BAD[case]
    with pytest.raises(RuntimeError, match=pattern):
        IMPLS[impl](*make_bad(make((3, 33), device, gen), 4))


@pytest.mark.parametrize("impl", ["public", "reference"])
@pytest.mark.parametrize("case", BAD_PY)
def test_bad_steps_type(device, gen, case, impl):
    make_bad, pattern = BAD_PY[case]
    with pytest.raises(RuntimeError, match=pattern):
        IMPLS[impl](*make_bad(make((3, 33), device, gen), 4))


@pytest.mark.parametrize("impl", ["native", "public"])
def test_bad_input_under_fake_tensors(gen, impl):
    from torch._subclasses.fake_tensor import FakeTensorMode

    mask = make((3, 33), "cpu", gen)
    with FakeTensorMode() as mode:
        fm = mode.from_tensor(mask)
        assert IMPLS[impl](fm, 4).shape == (3, 4)
        with pytest.raises(RuntimeError, match=r"num_transfer_tokens: steps must be >= 1"):
            IMPLS[impl](fm, 0)
