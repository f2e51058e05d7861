"""Paired wall clock: each case's denoise_step paired call by call with the eager T = 0 step
(softmax + max + gather) on the same logits; prints ours, eager, eager/ours per round."""
import sys, json, os, torch
nt = int(sys.argv[1]); torch.set_num_threads(nt)
tag = sys.argv[2]
import dllm_kernels as dk
from dllm_kernels import benchmark as bm
B, L, V, MASK = 1, 32, 126464, 126336
def eager(logits, x):
    x0 = torch.argmax(logits, dim=-1); p = torch.softmax(logits.float(), dim=-1)
    c = torch.gather(p, -1, x0[..., None])[..., 0]; m = x == MASK
    return torch.where(m, x0, x), torch.where(m, c, float("-inf"))
CASES = [("fp32 T=0", torch.float32, {}), ("bf16 T=0", torch.bfloat16, {}),
         ("fp32 T=1", torch.float32, {"temperature": 1.0, "seed": 1234}),
         ("bf16 T=1", torch.bfloat16, {"temperature": 1.0, "seed": 1234}),
         ("fp32 T=1 top_p=0.9", torch.float32, {"temperature": 1.0, "top_p": 0.9, "seed": 1234}),
         ("bf16 T=1 top_p=0.9 margin", torch.bfloat16, {"temperature": 1.0, "top_p": 0.9, "seed": 1234, "confidence": "margin"})]
g = torch.Generator().manual_seed(0)
base = [torch.randn(B, L, V, generator=g) * 3 for _ in range(6)]
x = torch.full((B, L), MASK, dtype=torch.int64)
out = {"tag": tag, "threads": nt, "load": os.getloadavg(), "cases": {}}
for name, dt, kw in CASES:
    sets = [b.to(dt) for b in base]
    slow = "top_p" in kw and tag == "before"
    rounds = []
    for r in range(3):
        o, p = bm.time_paired([lambda i: dk.denoise_step(sets[i % 6], x, MASK, **kw), lambda i: eager(sets[i % 6], x)],
                              torch.device("cpu"), warmup=2, reps=8 if slow else 20, max_seconds=3)
        rounds.append((o, p))
    out["cases"][name] = rounds
    print(f"{tag:<6} threads={nt} {name:<26} ours " + " ".join(f"{o*1e3:7.2f}" for o, _ in rounds) + "  eager " + " ".join(f"{p*1e3:6.2f}" for _, p in rounds) + "  eager/ours " + " ".join(f"{p/o:5.2f}" for o, p in rounds), flush=True)
out["load_end"] = os.getloadavg()
with open(f"wall_{tag}_{nt}_{os.getpid()}.json", "w") as f: json.dump(out, f)
