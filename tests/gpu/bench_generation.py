"""Generation benchmark on one GPU (issue 14), run by tests/gpu/run_generation_bench.sh on the device machine.

On the Llama-3.2-1B shape of bench_sft.py (random weights, bf16, the embedded tokenizer) and BELLE-like prompts
(bench_mix.py's length mix: prompt median 40 tokens, sigma 0.8, 5-400), side by side in one call:

  old_static_8   the old generate.py loop: left-padded static batches of 8 in file order, one model.generate
                 each, greedy, 256 new tokens (on the first --old_prompts prompts: it is slow)
  engine_greedy  common/generation.py in this process with generate.py's defaults, all --prompts prompts
  generate_py    scripts/generate.py with its defaults, the same prompts (a subprocess: whole wall time)
  varied_static  per-request max_tokens drawn from the response lengths (median 250, sigma 0.9, 5-1,024):
                 length-sorted static batches of 64, each generate() run to its longest request's limit
  varied_engine  the same requests through the engine (rows leave when done, waiting ones take their place):
                 on a GPU its static batch, whose decode step is compiled once (compile_seconds, timed apart)
  varied_engine_dynamic  the same through the engine's growing batch (decode="dynamic", uncompiled)
  api_stream_64  64 concurrent streaming requests (max_tokens as above) to scripts/api.py: all complete,
                 time to first token p50/p95, completion tokens/s over the whole wall time
  ppo_rollout_32x128  PPO's sampling shape (0.52 B Llama of build_random_llama.py, LoRA r16 on all
                 projections, 32 prompts, 128 tokens, temperature 1): generate() as PPO called it before
                 vs the engine it calls now

Random weights rarely emit eos, so the greedy rows run to their limit: tokens/s there is decoding speed.
Writes <out>/bench_generation.jsonl (one JSON object a row) and prints a table.

    python3 tests/gpu/bench_generation.py --out $OUT [--prompts 512 --old_prompts 128]
    python3 tests/gpu/bench_generation.py --out /tmp/gen --smoke      # CPU, tiny model, seconds
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "gpu"))
sys.path.insert(0, str(REPO / "scripts"))


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def response_lengths(count: int, cap: int, seed: int = 1) -> list[int]:
    import numpy as np

    rng = np.random.default_rng(seed)
    return [int(n) for n in np.clip(np.rint(250 * np.exp(0.9 * rng.standard_normal(count))), 5, cap)]


def old_static(engine: Any, prompts: list[list[int]], batch_size: int, max_new_tokens: int) -> dict[str, Any]:
    """generate.py before the engine: batches in file order, left-padded, one generate() call each."""
    import torch
    from transformers import GenerationConfig

    tokenizer, model = engine.tokenizer, engine.model
    settings = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, num_beams=1, temperature=None,
                                top_p=None, top_k=None, eos_token_id=engine.stop_ids,
                                pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    outputs, start = [], time.perf_counter()
    for first in range(0, len(prompts), batch_size):
        batch = tokenizer.pad(
            {"input_ids": prompts[first : first + batch_size]}, padding=True, return_tensors="pt"
        )
        with torch.inference_mode():
            rows = model.generate(input_ids=batch["input_ids"].to(model.device),
                                  attention_mask=batch["attention_mask"].to(model.device),
                                  generation_config=settings)  # fmt: skip
        for row in rows[:, batch["input_ids"].shape[1] :].tolist():
            end = next((i for i, t in enumerate(row) if t in engine.stop_ids), len(row))
            outputs.append(row[:end])
    sync()
    seconds = time.perf_counter() - start
    tokens = sum(len(o) for o in outputs)
    return {"prompts": len(prompts), "tokens": tokens, "seconds": seconds, "tokens_per_second": tokens / seconds,
            "outputs": outputs}  # fmt: skip


def engine_run(engine: Any, prompts: list[list[int]], params: Any) -> dict[str, Any]:
    """The engine on these requests. A static engine first runs the request needing the most columns alone,
    which compiles its decode step for this batch size (timed apart as compile_seconds)."""
    from common.generation import SamplingParams

    warm: dict[str, Any] = {}
    if getattr(engine, "static", False):
        listed = [params] * len(prompts) if isinstance(params, SamplingParams) else list(params)
        widest = max(range(len(prompts)), key=lambda i: len(prompts[i]) + listed[i].max_tokens)
        start = time.perf_counter()
        engine.generate([prompts[widest]], listed[widest])
        sync()
        warm = {"compile_seconds": time.perf_counter() - start, "static_slots": engine._slots.slots,
                "static_columns": engine._slots.length}  # fmt: skip
    start = time.perf_counter()
    completions = engine.generate(prompts, params)
    sync()
    seconds = time.perf_counter() - start
    tokens = sum(len(c.token_ids) for c in completions)
    return {**warm, "prompts": len(prompts), "tokens": tokens, "seconds": seconds,
            "tokens_per_second": tokens / seconds, "decode": "static" if warm else "dynamic",
            "outputs": [c.token_ids[:-1] if c.finish_reason == "stop" else c.token_ids for c in completions]}  # fmt: skip


def varied_static(
    engine: Any, prompts: list[list[int]], limits: list[int], batch_size: int
) -> dict[str, Any]:
    """Static batching with per-request limits: length-sorted batches, each generate() runs to the batch's
    longest limit; a row's tokens past its own limit are wasted (and not counted)."""
    import torch
    from transformers import GenerationConfig

    tokenizer, model = engine.tokenizer, engine.model
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    useful, start = 0, time.perf_counter()
    for first in range(0, len(order), batch_size):
        chunk = order[first : first + batch_size]
        batch = tokenizer.pad({"input_ids": [prompts[i] for i in chunk]}, padding=True, return_tensors="pt")
        settings = GenerationConfig(max_new_tokens=max(limits[i] for i in chunk), do_sample=False,
                                    temperature=None, top_p=None, top_k=None, eos_token_id=engine.stop_ids,
                                    pad_token_id=tokenizer.pad_token_id)  # fmt: skip
        with torch.inference_mode():
            rows = model.generate(input_ids=batch["input_ids"].to(model.device),
                                  attention_mask=batch["attention_mask"].to(model.device),
                                  generation_config=settings)  # fmt: skip
        for i, row in zip(chunk, rows[:, batch["input_ids"].shape[1] :].tolist(), strict=True):
            end = next((k + 1 for k, t in enumerate(row) if t in engine.stop_ids), len(row))
            useful += min(end, limits[i])
    sync()
    seconds = time.perf_counter() - start
    return {
        "prompts": len(prompts),
        "tokens": useful,
        "seconds": seconds,
        "tokens_per_second": useful / seconds,
    }


def profiled(name: str, fn: Any, engine: Any, out: Path, skip: int, steps: int) -> dict[str, Any]:
    """fn() under torch.profiler, with the engine's phases labelled (prefill, join, drop, the decode forward,
    the static batch's decode step, token picking, recording), recording a window of `steps` model forwards
    (a prefill or a decode step, of either batch) after the first `skip` (a whole varied run is thousands of
    decode steps: its trace took longer than a device call to record and sum). The op table, sorted by GPU
    time (CPU time on a CPU), goes to <out>/profile_<name>.txt. The profiler slows the run, so the row's
    tokens/s is not its speed."""
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function, schedule

    from common.generation import _StaticSlots

    # (class, method): the static batch's decode step does not go through the engine's _forward
    phases = [(type(engine), p) for p in ("_prefill", "_join", "_drop_done", "_forward", "_pick", "_record")]
    phases.append((_StaticSlots, "step"))
    originals = {(owner, phase): getattr(owner, phase) for owner, phase in phases}
    running: list[Any] = []  # the profiler, once started

    def labelled(phase: str, method: Any) -> Any:
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            with record_function(f"engine.{phase}"):
                result = method(self, *args, **kwargs)
            if phase in ("_forward", "static_step"):  # the profiler's step: one model forward
                running[0].step()
            return result

        return wrapper

    cuda = torch.cuda.is_available()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    for (owner, phase), method in originals.items():
        setattr(owner, phase, labelled(phase if owner is type(engine) else "static_step", method))
    try:
        window = schedule(wait=skip, warmup=2, active=steps, repeat=1)
        with profile(activities=activities, schedule=window) as prof:
            running.append(prof)
            row = fn()
            sync()
    finally:
        for (owner, phase), method in originals.items():
            setattr(owner, phase, method)
    table = prof.key_averages().table(sort_by="self_cuda_time_total" if cuda else "self_cpu_time_total",
                                      row_limit=50)  # fmt: skip
    labels = [e for e in prof.key_averages() if e.key.startswith("engine.")]
    # A phase's CPU total includes waiting for the GPU where it syncs; its GPU total is the kernels it launched.
    phases_table = "\n".join(f"{e.key:22} calls {e.count:7d}  CPU total {e.cpu_time_total / 1e3:10.1f} ms"
                             f"  GPU total {getattr(e, 'device_time_total', 0) / 1e3:10.1f} ms"
                             for e in sorted(labels, key=lambda e: -e.cpu_time_total))  # fmt: skip
    (out / f"profile_{name}.txt").write_text(phases_table + "\n\n" + table)
    print(phases_table, flush=True)
    return {**row, "profiled": True}


def run_generate_py(model_dir: Path, dev_file: Path, out: Path, max_new_tokens: int) -> dict[str, Any]:
    """scripts/generate.py with its defaults (only the files and, in smoke runs, the length given)."""
    predictions = out / "generate_py_predictions.jsonl"
    command = [sys.executable, "scripts/generate.py", "--dev_file", str(dev_file), "--model_name_or_path",
               str(model_dir), "--output_file", str(predictions), "--overwrite"]  # fmt: skip
    if max_new_tokens != 256:
        command += ["--max_new_tokens", str(max_new_tokens)]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    (out / "generate_py.log").write_text(result.stdout + result.stderr, encoding="utf-8")
    if result.returncode != 0:
        return {"status": f"exit {result.returncode}", "log_tail": result.stderr[-2000:]}
    lines = predictions.read_text(encoding="utf-8").splitlines()
    row = {"prompts": len(lines), "whole_run_seconds": seconds, "command": " ".join(command[1:])}
    logged = re.search(r"generated (\d+) tokens in ([\d.]+) s", result.stderr)  # generate.py's own timing
    if logged:
        tokens, gen_seconds = int(logged.group(1)), float(logged.group(2))
        row |= {"tokens": tokens, "seconds": gen_seconds, "tokens_per_second": tokens / gen_seconds}
    return row


# ---- the API under 64 concurrent streams -----------------------------------------------------------------


def stream_one(port: int, body: dict, result: dict) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    start = time.perf_counter()
    connection.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
    response = connection.getresponse()
    result["status"] = response.status
    if response.status != 200:
        result["error"] = response.read().decode()[:300]
        return
    for raw in response:
        line = raw.decode().strip()
        if not line.startswith("data: "):
            continue
        if line == "data: [DONE]":
            result["done"] = True
            break
        chunk = json.loads(line[6:])
        if chunk.get("usage"):
            result["completion_tokens"] = chunk["usage"]["completion_tokens"]
        elif chunk["choices"] and chunk["choices"][0]["delta"].get("content") and "ttft" not in result:
            result["ttft"] = time.perf_counter() - start
    result["seconds"] = time.perf_counter() - start


def api_stream(model_dir: Path, questions: list[str], limits: list[int], out: Path) -> dict[str, Any]:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = open(out / "api_server.log", "w")  # noqa: SIM115 - open while the server runs
    server = subprocess.Popen([sys.executable, "scripts/api.py", "--model_name_or_path", str(model_dir),
                               "--template", "belle", "--port", str(port), "--max_batch_size", "64"],
                              cwd=REPO, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", "/health")
                if connection.getresponse().status == 200:
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    return {
                        "status": "server did not start",
                        "log_tail": (out / "api_server.log").read_text()[-2000:],
                    }
                time.sleep(0.5)
        warm = {"model": model_dir.name, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
        stream_one(port, {**warm, "stream": True}, {})
        results: list[dict] = [{} for _ in questions]
        threads = [threading.Thread(target=stream_one, args=(port, {
            "model": model_dir.name, "messages": [{"role": "user", "content": q}], "max_tokens": n,
            "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}, r))
            for q, n, r in zip(questions, limits, results, strict=True)]  # fmt: skip
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - start
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()
    done = [r for r in results if r.get("done")]
    ttfts = sorted(r["ttft"] for r in done if "ttft" in r)
    tokens = sum(r.get("completion_tokens", 0) for r in done)

    def pct(p: float) -> float | None:
        return ttfts[min(len(ttfts) - 1, int(p * len(ttfts)))] if ttfts else None

    return {"requests": len(results), "completed": len(done), "errors": [r.get("error") for r in results
            if not r.get("done")][:3], "ttft_p50_s": pct(0.5), "ttft_p95_s": pct(0.95), "tokens": tokens,
            "wall_seconds": wall, "tokens_per_second": tokens / wall}  # fmt: skip


def ppo_rollouts(
    model_dir: Path, prompts: list[list[int]], max_new_tokens: int, smoke: bool
) -> dict[str, Any]:
    """PPO's rollout shape (tests/gpu/run_rlhf_checks.sh): a LoRA r16 policy on all 7 projections of the 0.52 B
    random Llama, bf16, 32 prompts sampled at temperature 1 to 128 tokens; generate() as PPO called it before,
    then the engine as it calls it now (eos never comes from random weights, so both run every step)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from common.generation import HFEngine, SamplingParams

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    policy = get_peft_model(base, LoraConfig(r=16, lora_alpha=32, target_modules=targets)).eval()
    batch = tokenizer.pad({"input_ids": prompts}, padding=True, return_tensors="pt").to(device)
    stop = [tokenizer.eos_token_id]
    row: dict[str, Any] = {"prompts": len(prompts), "max_new_tokens": max_new_tokens}
    for name in ("generate", "engine", "dynamic", "generate", "engine", "dynamic"):  # the first of each warms up
        torch.manual_seed(0)
        start = time.perf_counter()
        with torch.no_grad():
            if name == "generate":
                out = policy.generate(**batch, do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                                      max_new_tokens=max_new_tokens, eos_token_id=stop,
                                      pad_token_id=tokenizer.pad_token_id)  # fmt: skip
                tokens = int((out[:, batch["input_ids"].shape[1] :] != tokenizer.pad_token_id).sum())
            else:
                engine = HFEngine(policy, tokenizer, None, stop, max_batch_size=len(prompts),
                                  decode="dynamic" if name == "dynamic" else "auto")  # fmt: skip
                completions = engine.generate(
                    prompts, SamplingParams(max_tokens=max_new_tokens, temperature=1.0)
                )
                tokens = sum(len(c.token_ids) for c in completions)
        sync()
        row[f"{name}_seconds"], row[f"{name}_tokens"] = time.perf_counter() - start, tokens
    row["tokens"], row["seconds"] = row["engine_tokens"], row["engine_seconds"]
    row["tokens_per_second"] = row["engine_tokens"] / row["engine_seconds"]
    row["speedup_over_generate"] = row["generate_seconds"] / row["engine_seconds"]
    row["speedup_over_dynamic"] = row["dynamic_seconds"] / row["engine_seconds"]
    row["engine_decode"] = "static" if HFEngine(policy, tokenizer, None, stop).static else "dynamic"
    return row


# ---- main ------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", required=True, help="folder for bench_generation.jsonl and the logs")
    parser.add_argument("--prompts", type=int, default=512, help="BELLE-like prompts for the greedy rows")
    parser.add_argument("--old_prompts", type=int, default=128, help="prompts the slow old loop runs on")
    parser.add_argument("--max_new_tokens", type=int, default=256, help="answer length of the greedy rows")
    parser.add_argument("--varied", type=int, default=256, help="requests of the varied-length rows")
    parser.add_argument("--only", default="", help="comma-separated rows to run (default: all)")
    parser.add_argument("--profile", default="", help="comma-separated engine rows to run under torch.profiler")
    parser.add_argument("--profile_skip", type=int, default=20, help="model forwards run before the profiled window")
    parser.add_argument("--profile_steps", type=int, default=300, help="model forwards the profiled window holds")
    parser.add_argument(
        "--smoke", action="store_true", help="CPU check of the script: tiny model, a few prompts"
    )
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.smoke:
        args.prompts, args.old_prompts, args.max_new_tokens, args.varied = 12, 8, 8, 12
        args.profile_skip, args.profile_steps = 0, 8
    rows_wanted = set(filter(None, args.only.split(",")))
    rows_profiled = set(filter(None, args.profile.split(",")))

    import torch
    from bench_mix import write_length_mix
    from bench_sft import build_model
    from generate import GenerateConfig, dev_conversations  # scripts/generate.py reads the dev file

    from common.config import parse_config
    from common.generation import HFEngine, SamplingParams, load_engine

    tokenizer_dir = REPO / "models/tiny-llama"
    if args.smoke:
        model_dir = tokenizer_dir
    else:
        model_dir = Path("/tmp/llama-1b-gen")
        build_model(model_dir, tokenizer_dir)
    dev_file = out / "belle_like_prompts.jsonl"
    mix = write_length_mix(dev_file, tokenizer_dir, max(args.prompts, args.varied), cutoff=2048)
    config = parse_config(GenerateConfig, ["--dev_file", str(dev_file)])
    records = dev_conversations(config)
    engine = load_engine(str(model_dir), template="belle")  # generate.py's defaults: belle, 64 rows at once
    prompts = [engine.encode(r["messages"], r["system"]) for r in records]
    environment = {"gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
                   "torch": torch.__version__, "transformers": __import__("transformers").__version__,
                   "model": str(model_dir), "length_mix": mix}  # fmt: skip
    print(json.dumps(environment), flush=True)
    engine.generate(prompts[:8], SamplingParams(max_tokens=4))  # warm-up (CUDA context, kernels)

    results: dict[str, dict[str, Any]] = {}

    def run(name: str, fn: Any) -> None:
        if rows_wanted and name not in rows_wanted:
            return
        print(f"== {name}", flush=True)
        try:
            if name in rows_profiled:
                row = {"status": "ok", **profiled(name, fn, engine, out, args.profile_skip, args.profile_steps)}
            else:
                row = {"status": "ok", **fn()}
        except Exception as err:  # one failed row must not lose the others
            row = {"status": f"failed: {type(err).__name__}: {err}"[:500]}
        results[name] = row
        shown = {k: v for k, v in row.items() if k != "outputs"}
        print(json.dumps(shown), flush=True)
        with open(out / "bench_generation.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps({"row": name, **shown}) + "\n")

    greedy = SamplingParams(max_tokens=args.max_new_tokens)
    run("old_static_8", lambda: old_static(engine, prompts[: args.old_prompts], 8, args.max_new_tokens))
    run("engine_greedy", lambda: engine_run(engine, prompts[: args.prompts], greedy))
    if "old_static_8" in results and "engine_greedy" in results and "outputs" in results["engine_greedy"]:
        old, new = results["old_static_8"].get("outputs", []), results["engine_greedy"]["outputs"][: len(
            results["old_static_8"].get("outputs", []))]  # fmt: skip
        same = sum(a == b for a, b in zip(old, new, strict=True))
        print(f"identical greedy answers, old vs engine (bf16 on GPU need not be bitwise): {same}/{len(old)}")
    run("generate_py", lambda: run_generate_py(model_dir, dev_file, out, args.max_new_tokens))
    limits = response_lengths(args.varied, cap=1024 if not args.smoke else 12)
    varied_prompts = prompts[: args.varied]
    run("varied_static", lambda: varied_static(engine, varied_prompts, limits, 64))
    run(
        "varied_engine",
        lambda: engine_run(engine, varied_prompts, [SamplingParams(max_tokens=n) for n in limits]),
    )
    dynamic = HFEngine(engine.model, engine.tokenizer, engine.template, engine.stop_ids, engine.stop_strings,
                       decode="dynamic")  # fmt: skip
    run(
        "varied_engine_dynamic",
        lambda: engine_run(dynamic, varied_prompts, [SamplingParams(max_tokens=n) for n in limits]),
    )
    engine.model.to("cpu")  # the API server loads its own copy
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    questions = [r["messages"][-1]["content"] for r in records[:64]]
    api_limits = response_lengths(len(questions), cap=512 if not args.smoke else 8, seed=2)
    run("api_stream_64", lambda: api_stream(model_dir, questions, api_limits, out))
    if not args.smoke and (not rows_wanted or "ppo_rollout_32x128" in rows_wanted):
        subprocess.run(
            [sys.executable, "tests/gpu/build_random_llama.py", "/tmp/llama-0.5b"], cwd=REPO, check=True
        )
    ppo_model = tokenizer_dir if args.smoke else Path("/tmp/llama-0.5b")
    ppo_prompts = [p[-256:] for p in prompts[:32]]  # PPO's max_prompt_len 256
    run(
        "ppo_rollout_32x128",
        lambda: ppo_rollouts(ppo_model, ppo_prompts, 8 if args.smoke else 128, args.smoke),
    )

    # ---- summary -----------------------------------------------------------------------------------
    print(
        "\n| row | status | prompts | tokens | seconds | tokens/s | note |\n| --- | --- | --- | --- | --- | --- | --- |"
    )
    for name, row in results.items():
        note = ""
        if name == "api_stream_64" and row.get("status") == "ok":
            note = f"{row['completed']}/{row['requests']} complete, TTFT p50 {row['ttft_p50_s']:.3f} s p95 {row['ttft_p95_s']:.3f} s"
        if name == "generate_py" and row.get("status") == "ok":
            note = f"whole run incl. model load {row['whole_run_seconds']:.1f} s"
        if name == "ppo_rollout_32x128" and row.get("status") == "ok":
            note = (f"generate() {row['generate_seconds']:.2f} s vs engine {row['engine_seconds']:.2f} s "
                    f"({row['speedup_over_generate']:.2f}x); PPO before: 5.7 s rollout on an H100")  # fmt: skip
        tps = row.get("tokens_per_second")
        print(f"| {name} | {row['status'][:40]} | {row.get('prompts', row.get('requests', ''))} | "
              f"{row.get('tokens', '')} | {row.get('seconds', row.get('wall_seconds', 0)):.1f} | "
              f"{'' if tps is None else f'{tps:,.0f}'} | {note} |")  # fmt: skip
    base = results.get("old_static_8", {}).get("tokens_per_second")
    for name in ("engine_greedy",):
        if base and results.get(name, {}).get("tokens_per_second"):
            print(f"{name} / old_static_8 tokens/s: {results[name]['tokens_per_second'] / base:.1f}x")
    vs, ve = (results.get(n, {}).get("tokens_per_second") for n in ("varied_static", "varied_engine"))
    if vs and ve:
        print(f"varied_engine / varied_static tokens/s: {ve / vs:.2f}x")
    return 0 if all(r["status"] == "ok" for r in results.values()) else 1


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
