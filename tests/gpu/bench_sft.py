"""GPU check and benchmark for SFT, run on the device machine (see tests/gpu/run_sft_checks.sh).

Builds a Llama-3.2-1B-shaped model from random weights (vocabulary padded to 128,256 like the real
one, the embedded tokenizer for text), a file of long SFT examples cut to exactly `--seq` tokens,
and measures in one run, on one GPU, side by side:
  baseline  the plain transformers Trainer (defaults + bf16, sdpa) on random token blocks
  ours      scripts/finetune.py full and LoRA (r=8, all 7 projections), python and deepspeed launchers
Prints one JSON line per run and writes them to <out>/bench_sft.jsonl.

    python tests/gpu/bench_sft.py --out $OUT [--seq 2048 --micro_batch 4 --steps 12]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def build_model(path: Path, tokenizer_dir: Path) -> None:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    if (path / "config.json").is_file():
        return
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(  # Llama-3.2-1B's shape
        vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
        num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=4096,
        tie_word_embeddings=True, rope_theta=500000.0,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    print(f"built {path}: {sum(p.numel() for p in model.parameters()) / 1e9:.2f} B parameters", flush=True)


def write_long_sft(path: Path, tokenizer_dir: Path, seq: int, count: int) -> None:
    """SFT records whose response is long enough that every example is cut to exactly `seq` tokens."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    corpus = " ".join(
        line.strip()
        for f in sorted((REPO / "data_dir/pretrain").glob("*.txt"))
        for line in f.open()
        if line.strip()
    )
    ids = tokenizer(corpus, add_special_tokens=False)["input_ids"]
    with open(path, "w", encoding="utf-8") as out:
        for i in range(count):
            start = (i * 997) % max(1, len(ids) - 2 * seq)
            response = tokenizer.decode(ids[start : start + 2 * seq])
            out.write(
                json.dumps(
                    {"instruction": f"续写第{i}段", "input": "", "output": response}, ensure_ascii=False
                )
                + "\n"
            )


def baseline(model_dir: Path, seq: int, micro_batch: int, steps: int) -> dict:
    """The reference: Trainer defaults + bf16, random blocks of `seq` tokens, no gradient checkpointing."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

    from common.runs import step_timer_callback

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="sdpa")
    generator = torch.Generator().manual_seed(0)
    blocks = torch.randint(4, 4000, (micro_batch * steps, seq), generator=generator).tolist()
    data = Dataset.from_dict({"input_ids": blocks, "labels": blocks})
    args = TrainingArguments(
        output_dir="/tmp/bench-baseline", per_device_train_batch_size=micro_batch, max_steps=steps,
        bf16=True, report_to=[], save_strategy="no", logging_steps=1,
    )  # fmt: skip
    timer = step_timer_callback()
    torch.cuda.reset_peak_memory_stats()
    Trainer(model=model, args=args, train_dataset=data, callbacks=[timer]).train()
    median = timer.summary()["train_step_seconds_median"]
    result = {
        "run": "baseline: Trainer defaults + bf16, full",
        "tokens_per_second_median_step": micro_batch * seq / median,
        "peak_gpu_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
    }
    del model
    torch.cuda.empty_cache()
    return result


def ours(name: str, launcher: list[str], args: list[str], out: Path) -> dict:
    run_dir = Path("/tmp/bench-runs") / name
    command = [
        *launcher,
        "scripts/finetune.py",
        *args,
        "--output_dir",
        str(run_dir),
        "--overwrite_output_dir",
    ]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    (out / f"{name}.log").write_text(result.stdout[-20000:] + result.stderr[-40000:])
    if result.returncode != 0:
        return {"run": name, "error": result.stderr[-2000:]}
    metrics = json.loads((run_dir / "train_results.json").read_text())
    state = json.loads((run_dir / "trainer_state.json").read_text())
    tokens_per_step = state["num_input_tokens_seen"] / state["global_step"]
    return {
        "run": name,
        "command": " ".join(command),
        "wall_seconds": round(time.perf_counter() - start, 1),
        "tokens_per_second_median_step": tokens_per_step / metrics["train_step_seconds_median"],
        "tokens_per_second_whole_run": metrics["train_tokens_per_second"],
        "peak_gpu_memory_gib": metrics.get("peak_gpu_memory_gib"),
        "train_loss": metrics["train_loss"],
        "precision": json.loads((run_dir / "finetune_config.json").read_text())["_resolved"]["precision"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seq", type=int, default=2048)
    parser.add_argument("--micro_batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--skip_baseline", action="store_true")
    parser.add_argument(
        "--nproc", type=int, default=1, help="GPUs: >1 runs ours under torchrun / deepspeed on N GPUs"
    )
    parser.add_argument("--only", default="", help="comma-separated run names to do (default: all)")
    opts = parser.parse_args()
    opts.out.mkdir(parents=True, exist_ok=True)

    model_dir, data = Path("/tmp/llama-1b"), Path("/tmp/long_sft.json")
    build_model(model_dir, REPO / "models/tiny-llama")

    shape = ["--model_name_or_path", str(model_dir), "--data_path", str(data), "--cutoff_len", str(opts.seq),
             "--per_device_train_batch_size", str(opts.micro_batch), "--batch_size", str(opts.micro_batch),
             "--max_steps", str(opts.steps), "--val_set_size", "0", "--logging_steps", "1",
             "--save_steps", "100000", "--learning_rate", "1e-5"]  # fmt: skip
    lora = ["--use_lora", "--lora_target_modules", "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"]
    deepspeed = [
        sys.executable,
        os.environ.get("DEEPSPEED_BIN", "/tmp/site/bin/deepspeed"),
        f"--num_gpus={opts.nproc}",
    ]
    ds_config = ["--deepspeed", "run_config/deepspeed_config.json"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={opts.nproc}"]
    if opts.nproc == 1:
        plain, tag = [sys.executable], "python"
    else:  # tokens/s is then the total over all GPUs; the global batch grows with them (batch_size below)
        plain, tag = torchrun, "torchrun"
        shape[shape.index("--batch_size") + 1] = str(opts.micro_batch * opts.nproc)
    write_long_sft(data, REPO / "models/tiny-llama", opts.seq, opts.micro_batch * opts.steps * opts.nproc)
    runs = {
        f"1b_full_{tag}_{opts.nproc}gpu": (plain, shape),
        f"1b_lora_{tag}_{opts.nproc}gpu": (plain, shape + lora),
        f"1b_full_deepspeed_zero2_{opts.nproc}gpu": (deepspeed, shape + ds_config),
        f"1b_lora_deepspeed_zero2_{opts.nproc}gpu": (deepspeed, shape + lora + ds_config),
        f"1b_full_deepspeed_zero3_{opts.nproc}gpu": (deepspeed, shape + ["--deepspeed", "run_config/deepspeed_zero3.json"]),
        f"1b_full_fsdp2_{opts.nproc}gpu": (torchrun, shape + ["--fsdp_config", "run_config/fsdp2.json"]),
    }
    wanted = set(filter(None, opts.only.split(",")))
    results = [] if opts.skip_baseline else [baseline(model_dir, opts.seq, opts.micro_batch, opts.steps)]
    print(json.dumps(results[-1]) if results else "baseline skipped", flush=True)
    for name, (launcher, args) in runs.items():
        if wanted and name not in wanted:
            continue
        results.append(ours(name, launcher, args, opts.out))
        print(json.dumps(results[-1]), flush=True)
    with open(opts.out / "bench_sft.jsonl", "w") as handle:
        for row in results:
            handle.write(json.dumps(row) + "\n")
    print(
        "median step, tokens/s:",
        {r["run"]: round(r.get("tokens_per_second_median_step", 0)) for r in results},
    )
    print("all runs finished" if all("error" not in r for r in results) else "SOME RUNS FAILED")


if __name__ == "__main__":
    main()
