"""Experiment row of bench_mix.py: run a script with sdpa's flash backend switched off, so that cuDNN's
attention serves sdpa where it supports the call (the memory-efficient kernel otherwise). First times one
causal attention forward + backward at the benchmark's shape under each backend, so the log shows which
backend ran and what it saves.

    python3 tests/gpu/sdpa_cudnn.py scripts/finetune.py --model_name_or_path ...
"""

import runpy
import sys
import time

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.functional import scaled_dot_product_attention


def time_backend(backend: SDPBackend, kv_heads: int) -> float:
    """Milliseconds for one causal forward + backward (bf16) at Llama-3.2-1B's attention shape (32 query heads;
    8 key/value heads is how transformers passes them with enable_gqa, 32 after repeat_kv)."""
    q = torch.randn((4, 32, 2048, 64), device="cuda", dtype=torch.bfloat16, requires_grad=True)
    k, v = (torch.randn((4, kv_heads, 2048, 64), device="cuda", dtype=torch.bfloat16, requires_grad=True)
            for _ in range(2))  # fmt: skip
    gqa = kv_heads != 32
    with sdpa_kernel([backend]):
        for _ in range(3):  # warm-up
            scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa).sum().backward()
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(20):
            scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa).sum().backward()
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / 20 * 1000


for backend in (SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION, SDPBackend.EFFICIENT_ATTENTION):
    for kv_heads in (32, 8):
        try:
            milliseconds = f"{time_backend(backend, kv_heads):.2f} ms forward + backward"
        except RuntimeError as err:
            milliseconds = f"unavailable ({str(err).splitlines()[0][:200]})"
        print(f"sdpa {backend.name}, {kv_heads} key/value heads: {milliseconds}", flush=True)
torch.backends.cuda.enable_flash_sdp(False)
torch.backends.cuda.enable_cudnn_sdp(True)
script, sys.argv = sys.argv[1], sys.argv[1:]
runpy.run_path(script, run_name="__main__")
