"""Experiment launcher: run scripts/train_ppo.py with each step's phases timed on a synchronised clock, and one
step recorded by torch.profiler, to say where a PPO step's time goes (issue 14's step-time target).

    PROFILE_AT_STEP=5 python3 tests/gpu/ppo_phases.py [--dynamic] scripts/train_ppo.py ...

train_ppo.py's own times are not synchronised: the CPU leaves `rollout()` while the GPU still runs its
forwards, so part of them shows up in the update. Here every phase ends with torch.cuda.synchronize() (a
few syncs a step, next to the update's many .item() calls). Per step it prints the seconds of sampling,
the policy/value and reference forwards, scoring and the update; at PROFILE_AT_STEP (0-based) it prints the
profiled step's GPU time per kind and its top kernels and CPU ops. --dynamic samples with the engine's
growing, uncompiled batch instead of the static one it picks on a GPU; SDPA_CUDNN=1 leaves cuDNN's attention
on (train_ppo.py switches it off: common.modeling.avoid_cudnn_attention).
"""

import functools
import importlib.util
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, record_function

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from common.generation import HFEngine  # noqa: E402

AT = int(os.environ.get("PROFILE_AT_STEP", "5"))
args = sys.argv[1:]
if args and args[0] == "--dynamic":
    HFEngine.__init__ = functools.partialmethod(HFEngine.__init__, decode="dynamic")
    args = args[1:]
script, argv = args[0], args[1:]
if os.environ.get("SDPA_CUDNN") == "1":  # the run as before avoid_cudnn_attention(): cuDNN's attention allowed
    import common.modeling

    common.modeling.avoid_cudnn_attention = lambda: None
spec = importlib.util.spec_from_file_location("train_ppo", ROOT / script)
ppo = sys.modules["train_ppo"] = importlib.util.module_from_spec(spec)  # dataclasses look their module up
spec.loader.exec_module(ppo)

seconds: dict[str, list[float]] = defaultdict(list)


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(name: str, function):
    """`function` with its synchronised wall time appended to seconds[name] (module globals are patched, so
    the calls inside train_ppo.py go through it)."""

    @functools.wraps(function)
    def wrapper(*a, **kw):
        sync()
        started = time.perf_counter()
        with record_function(f"phase:{name}"):
            result = function(*a, **kw)
        sync()
        seconds[name].append(time.perf_counter() - started)
        return result

    return wrapper


for name in ("sample_responses", "reference_logits", "rollout", "score", "update"):
    setattr(ppo, name, timed(name, getattr(ppo, name)))
timed_step = timed("step", ppo.ppo_step)


def ppo_step(run, step):
    if step != AT:
        stats = timed_step(run, step)
    else:
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            stats = timed_step(run, step)
        report(prof)
    phases = {k: v[-1] for k, v in seconds.items()}
    forwards = phases["rollout"] - phases["sample_responses"]
    print(f"phases step {step + 1}: step {phases['step']:.3f} s = sample {phases['sample_responses']:.3f} + "
          f"policy/value/ref forwards {forwards:.3f} (ref {phases['reference_logits']:.3f}) + score "
          f"{phases['score']:.3f} + update {phases['update']:.3f} + rest "
          f"{phases['step'] - phases['rollout'] - phases['score'] - phases['update']:.3f}", flush=True)  # fmt: skip
    return stats


def report(prof) -> None:
    averages = prof.key_averages()
    kernels = sorted((e for e in averages if e.device_type.name == "CUDA"), key=lambda e: -e.self_device_time_total)
    busy = sum(e.self_device_time_total for e in kernels) / 1000
    lines = [f"profiled step {AT + 1}: GPU busy {busy:.1f} ms (sum of kernel times), kernels launched "
             f"{sum(e.count for e in kernels)}", "", "top kernels (self GPU ms, calls):"]  # fmt: skip
    lines += [f"  {e.self_device_time_total / 1000:9.2f} ms {e.count:7d}x  {e.key[:140]}" for e in kernels[:25]]
    cpu = sorted((e for e in averages if e.device_type.name == "CPU"), key=lambda e: -e.self_cpu_time_total)
    lines += ["", "top CPU ops (self CPU ms, calls):"]
    lines += [f"  {e.self_cpu_time_total / 1000:9.2f} ms {e.count:7d}x  {e.key[:140]}" for e in cpu[:30]]
    phases = [e for e in averages if e.key.startswith("phase:")]
    lines += ["", "phases (CPU ms, GPU ms inside):"]
    lines += [f"  {e.key:28s} {e.cpu_time_total / 1000:9.1f} {e.device_time_total / 1000:9.1f}" for e in phases]
    print("\n".join(lines), flush=True)


ppo.ppo_step = ppo_step
ppo.main(argv)
print("median seconds over steps after the first: "
      + ", ".join(f"{k} {statistics.median(v[1:] or v):.3f}" for k, v in seconds.items()), flush=True)  # fmt: skip
