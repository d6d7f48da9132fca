"""Experiment launcher of bench_mix.py: run a training script with torch.profiler recording a few optimizer
steps, and write where the GPU time went (issue 11's fixed-length gap: which kernels a step spends on).

    PROFILE_AT_STEP=8 PROFILE_STEPS=2 python3 tests/gpu/profile_steps.py scripts/finetune.py ...

PROFILE_AT_STEP: the first profiled optimizer step (after compilation and warm-up); PROFILE_STEPS: how many.
It prints (into the row's log) the top kernels by GPU time and the GPU time per kind of kernel: matmuls,
attention, triton kernels of inductor and liger, optimizer, copies, the rest. SDPA_CUDNN=1 also
switches sdpa's flash kernel off, so cuDNN's attention serves it where it can (the kernel names show which did).
"""

import os
import re
import runpy
import sys
import time
from collections import defaultdict

import torch
import transformers
from torch.profiler import ProfilerActivity, profile

AT, STEPS = int(os.environ.get("PROFILE_AT_STEP", "8")), int(os.environ.get("PROFILE_STEPS", "2"))
KINDS = [  # first match wins
    ("attention", re.compile(r"flash|fmha|cudnn|attention|sdpa", re.I)),
    ("optimizer", re.compile(r"adam|multi_tensor|foreach", re.I)),
    ("matmul", re.compile(r"gemm|cutlass|sm90|nvjet|matmul|xmma|cublas", re.I)),
    ("triton (inductor, liger)", re.compile(r"^triton_|_kernel$|liger", re.I)),
    ("copies and casts", re.compile(r"copy|memcpy|memset|cast|fill", re.I)),
]


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class ProfileSteps(transformers.TrainerCallback):
    def __init__(self) -> None:
        self.prof = None
        self.started = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == AT and self.prof is None:
            sync()
            self.prof = profile(activities=[ProfilerActivity.CPU]
                               + [ProfilerActivity.CUDA] * torch.cuda.is_available())
            self.prof.__enter__()
            self.started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self.prof is None or state.global_step != AT + STEPS:
            return
        sync()
        wall = time.perf_counter() - self.started
        self.prof.__exit__(None, None, None)
        averages = self.prof.key_averages()
        kernels = [e for e in averages if e.device_type.name == "CUDA"] or [
            e for e in averages if e.self_device_time_total > 0
        ]
        kernels.sort(key=lambda e: -e.self_device_time_total)
        total = sum(e.self_device_time_total for e in kernels) or 1
        per_kind: dict[str, float] = defaultdict(float)
        for e in kernels:
            kind = next((k for k, pattern in KINDS if pattern.search(e.key)), "other")
            per_kind[kind] += e.self_device_time_total
        lines = [f"steps {AT}..{AT + STEPS - 1}: wall {wall * 1000 / STEPS:.1f} ms a step, GPU busy "
                 f"{total / 1000 / STEPS:.1f} ms a step (sum of kernel times)", "", "GPU time per kind:"]  # fmt: skip
        lines += [f"  {kind:28s} {t / 1000 / STEPS:9.1f} ms a step  {100 * t / total:5.1f} %"
                  for kind, t in sorted(per_kind.items(), key=lambda kv: -kv[1])]  # fmt: skip
        lines += ["", "top kernels (self GPU time a step, calls a step):"]
        lines += [f"  {e.self_device_time_total / 1000 / STEPS:9.2f} ms {e.count // STEPS:6d}x  {e.key[:150]}"
                  for e in kernels[:45]]  # fmt: skip
        print("\n".join(lines), flush=True)
        self.prof = None


_init = transformers.Trainer.__init__


def _init_with_profiler(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    self.add_callback(ProfileSteps())


transformers.Trainer.__init__ = _init_with_profiler
if os.environ.get("SDPA_CUDNN") == "1":
    torch.backends.cuda.enable_flash_sdp(False)
    torch.backends.cuda.enable_cudnn_sdp(True)
script, sys.argv = sys.argv[1], sys.argv[1:]
runpy.run_path(script, run_name="__main__")
