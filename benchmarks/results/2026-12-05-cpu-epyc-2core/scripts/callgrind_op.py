# Run: valgrind --tool=callgrind --toggle-collect="*denoise_step_cpu*" python callgrind_op.py 2   (PYTHONPATH=<a before build> for the before count)
"""All cases in one process under callgrind (threads = 1): run with --toggle-collect='*denoise_step_cpu*'
--dump-after='*denoise_step_cpu*'; dump k (1-based) is call k; each case is called CALLS times."""
import sys, torch
torch.set_num_threads(1)
import dllm_kernels as dk
print("denoise path:", dk.backend_info()["cpu_features"].get("denoise_step", "(old build)"), file=sys.stderr)
B, L, V, MASK = 1, 32, 126464, 126336
CASES = [
    ("fp32_T0", torch.float32, {}),
    ("bf16_T0", torch.bfloat16, {}),
    ("fp32_T1", torch.float32, {"temperature": 1.0, "seed": 1234}),
    ("bf16_T1", torch.bfloat16, {"temperature": 1.0, "seed": 1234}),
    ("fp32_T1_topp0.9", torch.float32, {"temperature": 1.0, "top_p": 0.9, "seed": 1234}),
    ("bf16_T1_topp0.9_margin", torch.bfloat16, {"temperature": 1.0, "top_p": 0.9, "seed": 1234, "confidence": "margin"}),
]
CALLS = int(sys.argv[1]) if len(sys.argv) > 1 else 2
g = torch.Generator().manual_seed(0)
base = torch.randn(B, L, V, generator=g) * 3
inputs = {torch.float32: base, torch.bfloat16: base.to(torch.bfloat16)}
x = torch.full((B, L), MASK, dtype=torch.int64)
for name, dt, kw in CASES:
    for _ in range(CALLS):
        out = dk.denoise_step(inputs[dt], x, MASK, **kw)
    print(name, out[0][0, :4].tolist(), out[1][0, :2].tolist(), file=sys.stderr, flush=True)
