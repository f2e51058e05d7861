"""Train the shipped `tiny-tasks` model: a small LLaDA-architecture masked-diffusion LM (TinyLLaDA)
on the synthetic tasks of dllm_kernels.tasks (addition, sort, 4x4 Sudoku). Torch only.

    python tools/train_tiny.py                          # the shipped run (writes the package's weights)
    python tools/train_tiny.py --steps 300 --out /tmp/t  # a quick try elsewhere

Each step takes one batch of every task (MIX: 48 addition, 16 sort, 12 Sudoku problems) and makes
one AdamW update from their summed losses (alternating single-task steps learned several times
slower). Loss (LLaDA's SFT loss): per sequence t ~ U(eps, 1) (stratified over the batch), each answer token
(the answer's characters and the end tokens after it) is replaced by the mask token with
probability t; the loss is the cross-entropy on the masked tokens weighted 1/t, summed per
sequence and divided by its answer length, averaged over the batch. Prompts are never masked.
eps = 0.1 (LLaDA: 1e-3 for 4096-token sequences): with 8-token answers a t below 1/8 masks one
token or none, and weights up to 1000 on single tokens make the gradient noisy (a 125-step Sudoku
probe: loss 1.27-1.29 with eps = 1e-3, 1.11 with eps = 0.1).

Threads: --threads 1 by default. On the shared 2-core machine this was trained on, 2 torch
threads ran a step 6x slower than 1 (the other core was busy; OpenMP threads wait on each other).

Layout: prompts are left-padded in a batch and positions count from each row's first real token
(RoPE), as dllm_kernels.generate lays out a ragged batch; padding is never attended. A fraction
(--block-frac) of the batches use the attention pattern of generate's cache="block" mode instead
of full bidirectional attention: the prompt attends to itself through the block-causal staircase
(reference.block_causal_mask: key t visible from query p iff t // bs <= p // bs, positions from
the row's start) and not to the answer; answer block j attends to the prompt and to answer
blocks <= j, earlier answer blocks are clean (decoded), block j is noised, and the loss is taken
on block j only (bs = the generated length, half or a quarter of it). The other batches are plain
LLaDA: everything sees everything.

Deterministic from --seed: the data stream is random.Random(seed), the noise torch.Generator(seed),
init torch.manual_seed(seed), deterministic algorithms on; bit-identical on the same machine with
the same thread count (a different BLAS or thread count changes float rounding).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import time

import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from dllm_kernels import tasks as T  # noqa: E402
from dllm_kernels.models import TinyLLaDA, TinyLLaDAConfig  # noqa: E402
from dllm_kernels.models.pretrained import WEIGHTS_DIR, save_pretrained  # noqa: E402
from dllm_kernels.reference import block_causal_mask  # noqa: E402

# task -> sequences per step (every step takes a batch of each task: one Adam update for all)
MIX = {"addition": 48, "sort": 16, "sudoku": 12}


def make_batch(task: T.Task, tok: T.CharTokenizer, rng: random.Random, n: int):
    """(ids [n, P + G] left-padded prompts + target answers, real-token mask, P)."""
    probs = [task.sample(rng, "train") for _ in range(n)]
    prompts = [tok.encode(p.prompt) for p in probs]
    P, G = max(map(len, prompts)), task.gen_length
    ids = torch.full((n, P + G), tok.pad_id, dtype=torch.int64)
    real = torch.zeros((n, P + G), dtype=torch.bool)
    for b, (pr, p) in enumerate(zip(prompts, probs)):
        ids[b, P - len(pr):P] = torch.tensor(pr)
        ids[b, P:] = torch.tensor(task.target_ids(p, tok))
        real[b, P - len(pr):] = True
    return ids, real, P


def attention_mask(real: torch.Tensor, P: int, G: int, bs: int | None) -> torch.Tensor:
    """[B, 1, n, n] bool: which key each query sees. bs None: every real key (LLaDA). bs: the
    cache="block" pattern (module doc), answer blocks of bs tokens."""
    B, n = real.shape
    keys = real[:, None, None, :].expand(B, 1, n, n)
    eye = torch.eye(n, dtype=torch.bool)[None, None]   # a padded query sees itself (no NaN rows)
    if bs is None:
        return keys | eye
    pos = real.long().cumsum(1) - 1                       # position from the row's first token
    is_prompt = torch.arange(n) < P
    # The staircase over one position axis: the prompt at its own positions, the answer moved
    # 10^6 blocks past them, so a prompt query sees no answer key, an answer query sees every
    # prompt key and the answer blocks <= its own.
    p = torch.where(is_prompt, pos, (torch.arange(n) - P) + 10**6 * bs)
    see = block_causal_mask(p[:, :, None], p[:, None, :], bs)
    return (keys & see[:, None]) | eye


def masked_attention(mask):
    def attend(layer, q, k, v):
        group = q.shape[2] // k.shape[2]
        out = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.repeat_interleave(group, 2).transpose(1, 2),
            v.repeat_interleave(group, 2).transpose(1, 2), attn_mask=mask)
        return out.transpose(1, 2)
    return attend


def init_weights(model: TinyLLaDA, seed: int) -> None:
    """The training init (TinyLLaDA's own init is for random-weight tests): N(0, 1/fan_in)
    matrices (output projections also / sqrt(2 * layers), lm_head / 2), N(0, 1) embeddings, unit
    norms, zero bias except -30 on the mask token (never predicted). A GPT-2-style N(0, 0.02) init
    sat on plateaus (Sudoku at ln 4 = not even copying the givens) for ~10x longer."""
    g = torch.Generator().manual_seed(seed)
    L = model.config.num_layers
    for name, p in model.named_parameters():
        with torch.no_grad():
            if name.endswith("norm"):
                p.fill_(1.0)
            elif name == "lm_bias":
                p.zero_()
                p[model.config.mask_id] = -30.0
            elif name == "embed":
                p.copy_(torch.randn(p.shape, generator=g))
            else:
                std = p.shape[1] ** -0.5
                if name.endswith(("wo", "w_down")):
                    std /= math.sqrt(2 * L)
                elif name == "lm_head":
                    std *= 0.5
                p.copy_(torch.randn(p.shape, generator=g) * std)
        p.requires_grad_(True)


def task_loss(model, task, tok, data_rng, noise, n, eps, block_frac):
    """The masked-diffusion loss of one batch of n training problems of `task`."""
    ids, real, P = make_batch(task, tok, data_rng, n)
    G = task.gen_length
    B = ids.shape[0]
    u = (torch.rand((), generator=noise) + torch.arange(B) / B) % 1.0     # stratified U(0, 1)
    t = eps + (1 - eps) * u
    bs = None
    loss_cols = torch.ones(B, G, dtype=torch.bool)
    x = ids.clone()
    if data_rng.random() < block_frac:
        bs = data_rng.choice([G, G, G // 2, G // 4])
        nb = G // bs
        cur = torch.randint(0, nb, (B,), generator=noise)                     # the block being denoised
        blk = (torch.arange(G) // bs)[None, :]
        loss_cols = blk == cur[:, None]
        # blocks after the current one: masked (and unseen by the pattern); before: clean
        x[:, P:] = torch.where(blk > cur[:, None], tok.mask_id, x[:, P:])
    masked = (torch.rand(B, G, generator=noise) < t[:, None]) & loss_cols
    x[:, P:] = torch.where(masked, tok.mask_id, x[:, P:])
    mask = attention_mask(real, P, G, bs)
    positions = (real.long().cumsum(1) - 1).clamp(min=0)
    logits = model.forward(x, positions, masked_attention(mask), logits_range=(P, P + G))
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, P:].reshape(-1),
                         reduction="none").view(B, G)
    return ((ce * masked / t[:, None]).sum(1) / loss_cols.sum(1)).mean()


@torch.no_grad()
def evaluate(model, tok, n: int, seed: int = 1) -> dict:
    """Held-out exact match per task, one token per step, cache none (kernels)."""
    import dllm_kernels as dk
    model.eval()
    acc = {}
    for name, task in T.TASKS.items():
        probs = task.heldout(n, seed=seed)
        out = dk.generate(model, [tok.encode(p.prompt) for p in probs], gen_length=task.gen_length,
                          block_length=task.block_length, steps=task.gen_length, cache="none",
                          pad_id=tok.pad_id)
        gen = out.tokens[:, -task.gen_length:]
        acc[name] = sum(task.correct(p, g, tok) for p, g in zip(probs, gen)) / n
    model.train()
    return acc


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--eps", type=float, default=0.1, help="t ~ U(eps, 1); 0.1 bounds the 1/t weight at 10 (8-token answers: a t below 1/8 masks one token or none)")
    ap.add_argument("--block-frac", type=float, default=0.15, help="share of batches with the block-mode attention pattern")
    ap.add_argument("--batch-scale", type=float, default=1.0, help="scale the per-task batch sizes")
    ap.add_argument("--tasks", default=",".join(MIX), help="comma-separated task families to train on")
    ap.add_argument("--clip", type=float, default=1.0, help="gradient-norm clip")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: on a busy 2-core machine 2 threads ran 6x slower)")
    ap.add_argument("--eval-every", type=int, default=1000)
    ap.add_argument("--eval-n", type=int, default=100)
    ap.add_argument("--out", default=WEIGHTS_DIR, help="folder for tiny-tasks.safetensors / .json / train_log.json")
    ap.add_argument("--name", default="tiny-tasks")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    tok = T.tokenizer()
    cfg = TinyLLaDAConfig(vocab_size=tok.vocab_size, hidden_size=args.hidden, num_layers=args.layers,
                          num_heads=args.heads, mask_id=tok.mask_id, rope_theta=10_000.0)
    model = TinyLLaDA(cfg, seed=args.seed)
    init_weights(model, args.seed)
    n_params = sum(p.numel() for p in model.parameters())
    decay = [p for n, p in model.named_parameters() if p.dim() == 2 and n != "embed"]
    rest = [p for n, p in model.named_parameters() if not (p.dim() == 2 and n != "embed")]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": rest, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.98))

    def lr_at(s):
        if s < args.warmup:
            return args.lr * (s + 1) / args.warmup
        frac = (s - args.warmup) / max(1, args.steps - args.warmup)
        return args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))

    data_rng = random.Random(args.seed)
    noise = torch.Generator().manual_seed(args.seed + 1)
    names = [n for n in args.tasks.split(",") if n]
    print(f"train_tiny: TinyLLaDA hidden {cfg.hidden_size}, {cfg.num_layers} layers, {cfg.num_heads} heads "
          f"(head_dim {cfg.head_dim}), ff {cfg.intermediate_size}, vocab {cfg.vocab_size}; {n_params:,} "
          f"parameters; {args.steps} steps, {torch.get_num_threads()} threads", flush=True)
    log = {"loss": [], "eval": []}
    window = {n: [] for n in names}
    gnorms = []
    t0 = time.perf_counter()
    model.train()
    for step in range(args.steps):
        opt.zero_grad(set_to_none=True)
        for name in names:              # every task in every step (one Adam update for all)
            n = max(4, int(MIX[name] * args.batch_scale))
            loss = task_loss(model, T.TASKS[name], tok, data_rng, noise, n, args.eps, args.block_frac)
            loss.backward()
            window[name].append(float(loss.detach()))
        for gparam in opt.param_groups:
            gparam["lr"] = lr_at(step)
        gnorm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip))
        opt.step()
        gnorms.append(gnorm)
        if (step + 1) % 100 == 0:
            row = {"step": step + 1, "time_s": round(time.perf_counter() - t0, 1), "lr": lr_at(step),
                   "grad_norm": round(sum(gnorms) / len(gnorms), 3)}
            gnorms = []
            for k in names:
                row[k] = round(sum(window[k]) / len(window[k]), 4) if window[k] else None
                window[k] = []
            log["loss"].append(row)
            print(f"step {step + 1:5d}  {row['time_s']:7.1f}s  lr {row['lr']:.2e}  |g| {row['grad_norm']:.2f}  " +
                  "  ".join(f"{k} {row[k]}" for k in names), flush=True)
        if args.eval_every and ((step + 1) % args.eval_every == 0 or step + 1 == args.steps):
            te = time.perf_counter()
            acc = evaluate(model, tok, args.eval_n)
            t0 += time.perf_counter() - te       # evaluation time is not training time
            log["eval"].append({"step": step + 1, **acc})
            print(f"  held-out exact match (n={args.eval_n}, one token per step): " +
                  "  ".join(f"{k} {v:.1%}" for k, v in acc.items()), flush=True)
    train_s = time.perf_counter() - t0
    print(f"train_tiny: {args.steps} steps in {train_s:.0f} s (training only)", flush=True)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    summary = {"name": args.name, "seed": args.seed, "steps": args.steps, "train_seconds": round(train_s, 1),
               "threads": torch.get_num_threads(), "torch": torch.__version__, "parameters": n_params,
               "args": vars(args) | {"out": None}, "mix": MIX, "loss": log["loss"], "eval": log["eval"]}
    os.makedirs(args.out, exist_ok=True)
    save_pretrained(model, tok, args.out, args.name, training=summary)
    print(f"train_tiny: wrote {os.path.join(args.out, args.name)}.safetensors / .json", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
