"""commit_: kernel vs reference on random inputs, odd and strided shapes, opcheck, errors."""

import pytest
import torch

import dllm_kernels as dk
from dllm_kernels import reference

SHAPES = [(1, 1), (1, 7), (2, 32), (3, 33), (4, 320), (5, 4099), (0, 5), (3, 0)]
VOCAB, MASK_ID = 126_464, 126_336


def make(shape, dtype, device, gen, p=0.3):
    x = torch.randint(0, VOCAB, shape, generator=gen, dtype=dtype)
    x[torch.rand(shape, generator=gen) < 0.5] = MASK_ID
    x0 = torch.randint(0, VOCAB, shape, generator=gen, dtype=dtype)
    transfer = torch.rand(shape, generator=gen) < p
    return x.to(device), x0.to(device), transfer.to(device)


def expected(x, x0, transfer):
    return reference.commit_(x.clone(), x0, transfer)


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_matches_reference(device, gen, shape, dtype):
    x, x0, transfer = make(shape, dtype, device, gen)
    want = expected(x, x0, transfer)
    out = dk.commit_(x, x0, transfer)
    assert out is x
    assert torch.equal(x, want)


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_all_or_nothing(device, gen, p):
    x, x0, transfer = make((3, 33), torch.int64, device, gen, p=p)
    before = x.clone()
    dk.commit_(x, x0, transfer)
    assert torch.equal(x, x0 if p == 1.0 else before)


def test_strided_views_in_place(device, gen):
    """A block slice of a longer sequence, a transposed x0 and a stepped mask, without copies."""
    B, T, start, L = 3, 97, 40, 33
    full, x0_t, _ = make((B, T), torch.int64, device, gen)
    x = full[:, start : start + L]  # row stride T, not contiguous
    x0 = torch.randint(0, VOCAB, (L, B), generator=gen).to(device).t()  # strides (1, B)
    transfer = (torch.rand(B, 2 * L, generator=gen) < 0.4).to(device)[:, ::2]  # col stride 2
    assert not x.is_contiguous() and not x0.is_contiguous() and not transfer.is_contiguous()
    full_before = full.clone()
    want = expected(x, x0, transfer)
    dk.commit_(x, x0, transfer)
    assert torch.equal(x, want)
    assert torch.equal(full[:, :start], full_before[:, :start])  # outside the slice untouched
    assert torch.equal(full[:, start + L :], full_before[:, start + L :])


def test_large_batch_rows(device, gen):
    """More rows than one grid dimension holds (65,535): the row loop must wrap."""
    x, x0, transfer = make((70_000, 3), torch.int64, device, gen)
    want = expected(x, x0, transfer)
    dk.commit_(x, x0, transfer)
    assert torch.equal(x, want)


def test_long_rows(device, gen):
    """More columns than one launch covers (1024 blocks x 256 threads): the column loop wraps."""
    x, x0, transfer = make((1, 300_001), torch.int64, device, gen)
    want = expected(x, x0, transfer)
    dk.commit_(x, x0, transfer)
    assert torch.equal(x, want)


def test_same_tensor_is_a_no_op(device, gen):
    x, _, transfer = make((3, 33), torch.int64, device, gen)
    before = x.clone()
    dk.commit_(x, x, transfer)
    assert torch.equal(x, before)


def test_non_canonical_bool_bytes(device):
    """A bool tensor viewed from bytes other than 0/1 counts every nonzero byte as True."""
    transfer = torch.tensor([[2, 0, 255, 1]], dtype=torch.uint8).view(torch.bool).to(device)
    x = torch.tensor([[5, 6, 7, 8]], device=device)
    dk.commit_(x, torch.tensor([[1, 2, 3, 4]], device=device), transfer)
    assert x.tolist() == [[1, 6, 3, 4]]


@pytest.mark.native
def test_opcheck(device, gen):
    x, x0, transfer = make((3, 33), torch.int64, device, gen)
    torch.library.opcheck(torch.ops.dllm_kernels.commit_, (x, x0, transfer))


@pytest.mark.native
def test_torch_compile_fullgraph(gen):
    x, x0, transfer = make((2, 17), torch.int64, "cpu", gen)
    want = expected(x, x0, transfer)
    torch.compile(dk.commit_, fullgraph=True, backend="eager")(x, x0, transfer)
    assert torch.equal(x, want)


# ---- bad input: a clear error naming op and argument, and x left untouched ----------------------

BAD = {
    "x float": (lambda x, x0, t: (x.float(), x0, t), r"commit_: x must have dtype"),
    "x 1-D": (lambda x, x0, t: (x[0], x0[0], t[0]), r"commit_: x must be 2-D"),
    "x0 dtype": (lambda x, x0, t: (x, x0.int(), t), r"commit_: x0 must have (the same )?dtype"),
    "x0 shape": (lambda x, x0, t: (x, x0[:, :-1], t), r"commit_: x0 must have the same shape"),
    "transfer uint8": (
        lambda x, x0, t: (x, x0, t.to(torch.uint8)),
        r"commit_: transfer must have dtype",
    ),
    "transfer shape": (
        lambda x, x0, t: (x, x0, t[:1]),
        r"commit_: transfer must have the same shape",
    ),
    "x expanded": (
        lambda x, x0, t: (x[:1].expand(3, -1), x0, t),
        r"commit_: x is written in place",
    ),
    "x0 overlaps x": (
        lambda x, x0, t: (x[:, 1:], x[:, :-1], t[:, 1:]),
        r"commit_: x0 must not share memory with x",
    ),
    "transfer overlaps x": (
        lambda x, x0, t: (x[:, :4], x0[:, :4], x[:, :4].view(torch.bool)[:, :4]),
        r"commit_: transfer must not share memory with x",
    ),
}
IMPLS = {
    "native": lambda *a: torch.ops.dllm_kernels.commit_(*a),
    "public": lambda *a: dk.commit_(*a),
    "reference": lambda *a: reference.commit_(*a),
}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", BAD)
def test_bad_input(device, gen, case, impl):
    make_bad, pattern = BAD[case]
    x, x0, t = make_bad(*make((3, 33), torch.int64, device, gen))
    before = x.clone()
    with pytest.raises(RuntimeError, match=pattern):
        IMPLS[impl](x, x0, t)
    assert torch.equal(x, before)


@pytest.mark.native
@pytest.mark.parametrize("impl", ["native", "public"])
def test_bad_input_under_fake_tensors(gen, impl):
    """The fake kernel (torch.compile / export) rejects the same inputs."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    x, x0, t = make((3, 33), torch.int64, "cpu", gen)
    with FakeTensorMode() as mode:
        fx, fx0, ft = mode.from_tensor(x), mode.from_tensor(x0), mode.from_tensor(t)
        IMPLS[impl](fx, fx0, ft)  # valid input passes
        with pytest.raises(RuntimeError, match=r"commit_: transfer must have dtype"):
            IMPLS[impl](fx, fx0, ft.to(torch.uint8))


@pytest.mark.native
def test_wrong_device_meta(gen):
    x, x0, t = make((3, 33), torch.int64, "cpu", gen)
    for impl in IMPLS.values():
        with pytest.raises(RuntimeError, match=r"commit_: x0 must be on the same device as x"):
            impl(x, x0.to("meta"), t)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_wrong_device_cuda(gen):
    x, x0, t = make((3, 33), torch.int64, "cuda", gen)
    before = x.clone()
    for impl in IMPLS.values():
        with pytest.raises(
            RuntimeError, match=r"commit_: (x0|transfer) must be on the same device as x"
        ):
            impl(x, x0.cpu(), t)
        with pytest.raises(
            RuntimeError, match=r"commit_: transfer must be on the same device as x"
        ):
            impl(x, x0, t.cpu())
    assert torch.equal(x, before)
