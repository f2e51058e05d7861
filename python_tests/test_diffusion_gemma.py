"""dllm_kernels.integrations.transformers.fuse_diffusion_gemma on a small random-init
transformers DiffusionGemmaForBlockDiffusion (offline, CPU): the entropy-bound acceptance equals
transformers' EntropyBoundSampler.accept_canvas on the same logits at every step of a real
generation; with the same canvases and a greedy-limit temperature the tokens (and
tokens_per_forward) equal the unfused model.generate; the sampled and renoised tokens follow the
distributions of transformers' own step (chi-square, fixed seed); bad arguments."""

import math
from types import SimpleNamespace

import pytest
import torch

transformers = pytest.importorskip(
    "transformers", minversion="5.11", reason="needs transformers >= 5.11 (DiffusionGemma)"
)
import peer_loops as peers  # noqa: E402
from transformers import DiffusionGemmaConfig, DiffusionGemmaForBlockDiffusion  # noqa: E402
from transformers.models.diffusion_gemma import generation_diffusion_gemma as dg  # noqa: E402

import dllm_kernels.ops  # noqa: E402
from dllm_kernels.integrations.transformers import fuse_diffusion_gemma, unfuse_diffusion_gemma  # noqa: E402

V, CANVAS = 128, 16


def small_model(seed=0):
    """2 layers (sliding + full), 4 experts, vocab 128, canvas 16; initializer_range 1.0 so that
    the entropies spread and the outputs are varied (the 0.02 default gives near-uniform logits;
    asserted by the tests)."""
    torch.manual_seed(seed)
    text = dict(
        vocab_size=V,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        global_head_dim=32,
        layer_types=["sliding_attention", "full_attention"],
        sliding_window=64,
        max_position_embeddings=512,
        num_experts=4,
        top_k_experts=2,
        moe_intermediate_size=32,
        initializer_range=1.0,
    )
    cfg = DiffusionGemmaConfig(
        text_config=text,
        vision_config=None,
        canvas_length=CANVAS,
        image_token_id=V - 1,
        initializer_range=1.0,
    )
    return DiffusionGemmaForBlockDiffusion(cfg).eval()


@pytest.fixture(scope="module")
def model():
    return small_model()


@pytest.fixture(autouse=True)
def unfused(model):
    unfuse_diffusion_gemma(model)
    yield
    unfuse_diffusion_gemma(model)


def prompt(B, P, seed=0):
    return torch.randint(3, V - 8, (B, P), generator=torch.Generator().manual_seed(seed))


def with_canvases(model, canvases):
    """Every canvas (block) starts from the next of `canvases` (the model would draw it with
    torch.randint, whose state the two implementations leave differently)."""
    it = iter(canvases)
    orig = model._prepare_denoiser_inputs

    def prep(*a, model_kwargs, **kw):
        model_kwargs["decoder_input_ids"] = next(it).clone()
        return orig(*a, model_kwargs=model_kwargs, **kw)

    model._prepare_denoiser_inputs = prep
    return lambda: model.__dict__.pop("_prepare_denoiser_inputs", None)


def test_eb_acceptance_equals_transformers_on_the_same_logits(model, monkeypatch):
    """Every fused step of a sampled generation: the op's transfer equals
    EntropyBoundSampler.accept_canvas on the logits the op read."""
    calls = []
    real = dllm_kernels.ops.denoise_and_select

    def record(logits, x, mask_id, **kw):
        before = x.clone()
        out = real(logits, x, mask_id, **kw)
        calls.append((logits.clone(), before, out, kw["eligible"].clone(), kw["entropy_bound"]))
        return out

    monkeypatch.setattr(dllm_kernels.ops, "denoise_and_select", record)
    fuse_diffusion_gemma(model)
    torch.manual_seed(0)
    out = model.generate(
        prompt(3, 9),
        max_new_tokens=2 * CANVAS,
        max_denoising_steps=12,
        sampler_config=dg.EntropyBoundSamplerConfig(entropy_bound=1.5),
    )
    assert len(calls) >= 12
    partial = 0
    for logits, canvas, (x0, conf, transfer, argmax), eligible, gamma in calls:
        sampler = dg.EntropyBoundSampler(
            dg.EntropyBoundSamplerConfig(entropy_bound=gamma), CANVAS, V, 12
        )
        sampler.accept_canvas(canvas, x0, logits, 1)
        want = sampler.accepted_token_mask
        live = eligible[:, 0]
        assert torch.equal(transfer[live], want[live])
        # the argmax canvas comes from the same call (return_argmax), as torch.argmax has it
        assert torch.equal(argmax[live], logits.argmax(-1)[live])
        h = -conf[live]
        assert float(h.max() - h.min()) > 0.5, "entropies barely spread"
        n = transfer[live].sum(-1)
        partial += int(((n > 1) & (n < CANVAS)).sum())
    assert partial > 0, "no step accepted a proper subset of more than one position"
    peers.assert_not_degenerate(out.sequences[:, 9:])


@pytest.mark.parametrize("stability", [0, 1, 2])
def test_greedy_limit_tokens_equal_unfused_generate(model, stability):
    """t in [1e-4, 2e-4]: the sample is the argmax and every position is accepted, so with the
    same canvases both implementations produce the same tokens and tokens_per_forward. (This
    random model's argmax never settles under self-conditioning, so with stability >= 1 every
    canvas runs all its steps; with 0 the confidence test alone stops each canvas at once.)"""
    ids = prompt(2, 7, seed=1)
    g = torch.Generator().manual_seed(2)
    canvases = [torch.randint(0, V, (2, CANVAS), generator=g) for _ in range(3)]
    kw = dict(
        max_new_tokens=3 * CANVAS,
        max_denoising_steps=8,
        t_min=1e-4,
        t_max=2e-4,
        stability_threshold=stability,
        confidence_threshold=0.005,
    )
    undo = with_canvases(model, canvases)
    want = model.generate(ids, **kw)
    undo()
    fuse_diffusion_gemma(model)
    undo = with_canvases(model, canvases)
    got = model.generate(ids, **kw)
    undo()
    assert isinstance(got, dg.DiffusionGemmaGenerationOutput)
    peers.assert_not_degenerate(got.sequences[:, 7:], min_distinct=16)
    assert torch.equal(got.sequences, want.sequences)
    assert torch.equal(got.tokens_per_forward, want.tokens_per_forward)
    if stability == 0:
        assert torch.all(want.tokens_per_forward == CANVAS)  # stopped after one step


def chi2_homogeneity(a: torch.Tensor, b: torch.Tensor, bins: int) -> float:
    """p-value of Pearson's chi-square test that samples a and b (int tokens) come from the same
    distribution; bins with an expected count < 5 are pooled into one."""
    ca = torch.bincount(a, minlength=bins).double()
    cb = torch.bincount(b, minlength=bins).double()
    tot = ca + cb
    na, nb = ca.sum(), cb.sum()
    small = tot * min(na, nb) / (na + nb) < 5
    ca = torch.cat([ca[~small], ca[small].sum(0, keepdim=True)])
    cb = torch.cat([cb[~small], cb[small].sum(0, keepdim=True)])
    tot = ca + cb
    keep = tot > 0
    ca, cb, tot = ca[keep], cb[keep], tot[keep]
    ea, eb = tot * na / (na + nb), tot * nb / (na + nb)
    stat = float((((ca - ea) ** 2) / ea).sum() + (((cb - eb) ** 2) / eb).sum())
    df = len(tot) - 1
    return float(
        torch.special.gammaincc(
            torch.tensor(df / 2, dtype=torch.float64), torch.tensor(stat / 2, dtype=torch.float64)
        )
    )


def test_sampled_and_renoised_tokens_follow_transformers_distribution(model):
    """One step on fixed logits, N identical rows: position 0 (lowest entropy, always accepted)
    carries the sample from softmax(logits), the others (entropy above the bound) are renoised
    uniformly; fused vs transformers' own step, chi-square homogeneity at p > 1e-3."""
    N = 3000
    g = torch.Generator().manual_seed(5)
    row = torch.randn(CANVAS, V, generator=g) * 0.4
    row[0] = torch.randn(V, generator=g) * 1.6  # spread, lower entropy
    logits = row.expand(N, CANVAS, V).contiguous()
    canvas = torch.randint(0, V, (N, CANVAS), generator=g)
    fwd = lambda **kw: SimpleNamespace(logits=logits)  # noqa: E731
    args = dict(
        decoder_forward=fwd,
        argmax_canvas=canvas,
        input_ids=None,
        decoder_position_ids=None,
        self_conditioning_logits=None,
        mask_mapping=None,
        cache=None,
        cur_step=1,
        logits_processor=transformers.LogitsProcessorList(),
        diffusion_stopping_criteria=None,
    )

    def run():
        sampler = dg.EntropyBoundSampler(
            dg.EntropyBoundSamplerConfig(entropy_bound=0.1), CANVAS, V, 1
        )
        return model._denoising_step(
            current_canvas=canvas.clone(),
            sampler=sampler,
            finished_denoising=torch.zeros(N, dtype=torch.bool),
            **args,
        )[0]

    torch.manual_seed(11)
    want = run()
    fuse_diffusion_gemma(model)
    torch.manual_seed(11)
    got = run()
    h = torch.distributions.Categorical(logits=row).entropy()
    assert h.argmin() == 0 and float(h.sort().values[1]) > 0.1  # only position 0 accepted
    p_sample = chi2_homogeneity(got[:, 0], want[:, 0], V)
    p_noise = chi2_homogeneity(got[:, 1:].flatten(), want[:, 1:].flatten(), V)
    assert p_sample > 1e-3 and p_noise > 1e-3, (p_sample, p_noise)
    assert got[:, 0].unique().numel() > 20 and got[:, 1:].unique().numel() == V
    # and the test has power: a sample from a flatter distribution is told apart
    flat = torch.distributions.Categorical(logits=row[0] * 0.8).sample((N,))
    assert chi2_homogeneity(flat, want[:, 0], V) < 1e-3


def test_user_logits_processor_runs_first(model):
    """A user logits processor (here: ban ids < 64) runs before the temperature schedule, in the
    fused step as in transformers' (one canvas, greedy limit: same tokens)."""

    class Ban(transformers.LogitsProcessor):
        def __call__(self, input_ids, scores, cur_step):
            scores = scores.clone()
            scores[..., :64] = -math.inf
            return scores

    ids = prompt(2, 5, seed=3)
    canvas = torch.randint(0, V, (2, CANVAS), generator=torch.Generator().manual_seed(4))
    kw = dict(
        max_new_tokens=CANVAS,
        max_denoising_steps=6,
        t_min=1e-4,
        t_max=2e-4,
        decoder_input_ids=canvas,
        logits_processor=transformers.LogitsProcessorList([Ban()]),
    )
    want = model.generate(ids, **kw)
    fuse_diffusion_gemma(model)
    got = model.generate(ids, **kw)
    assert torch.equal(got.sequences, want.sequences)
    assert (got.sequences[:, 5:] >= 64).all()


def test_fuse_is_idempotent_and_undone(model):
    assert fuse_diffusion_gemma(model) is model
    fuse_diffusion_gemma(model)
    assert "_denoising_step" in model.__dict__
    unfuse_diffusion_gemma(model)
    assert "_denoising_step" not in model.__dict__


def test_bad_arguments(model):
    with pytest.raises(
        TypeError, match="fuse_diffusion_gemma: model must be a transformers DiffusionGemma"
    ):
        fuse_diffusion_gemma(torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match="model must be"):
        fuse_diffusion_gemma(peers.hf_model("qwen2", 32))
    fuse_diffusion_gemma(model)
    sampler = dg.EntropyBoundSampler(
        dg.EntropyBoundSamplerConfig(entropy_bound=0.1), CANVAS, V + 1, 1
    )
    logits = torch.randn(1, CANVAS, V)
    with pytest.raises(ValueError, match="vocab_size"):
        model._denoising_step(
            decoder_forward=lambda **kw: SimpleNamespace(logits=logits),
            current_canvas=torch.zeros(1, CANVAS, dtype=torch.long),
            argmax_canvas=torch.zeros(1, CANVAS, dtype=torch.long),
            input_ids=None,
            decoder_position_ids=None,
            self_conditioning_logits=None,
            mask_mapping=None,
            cache=None,
            finished_denoising=torch.zeros(1, dtype=torch.bool),
            cur_step=1,
            sampler=sampler,
            logits_processor=transformers.LogitsProcessorList(),
            diffusion_stopping_criteria=None,
        )
