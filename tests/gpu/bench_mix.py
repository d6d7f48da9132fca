"""GPU benchmark: TRL's packed SFT, the plain Trainer and scripts/finetune.py side by side, on one GPU.

Llama-3.2-1B shape (1.24 B random weights, vocabulary 128,256, the tiny tokenizer for text; built by
tests/gpu/bench_sft.py's `build_model`), 4,096 alpaca records with BELLE's length mix cut from the shipped
corpus, cutoff 2,048, fp32 weights + bf16 autocast, lr 1e-5. Every row runs in its own process (peak GPU
memory is per row) and is appended to <out>/bench_mix.jsonl when it ends, so a time-out keeps what
finished; at the end <out>/bench_mix.json and a Markdown table (<out>/bench_mix.md) with the ratios.

    PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 python tests/gpu/bench_mix.py --out $OUT            # every row
    python tests/gpu/bench_mix.py --out $OUT --only trl_packing_flex_full,ours_full --steps 100
    bash tests/gpu/run_bench_mix.sh --only fixed_trainer,fixed_ours_full     # device machine, wheels first
    python tests/gpu/bench_mix.py --smoke --out /tmp/bench_smoke             # CPU, tiny model: 3-6 min on 2 cores

Rows (names for --only):
  trl_packing_flex_full   TRL SFTTrainer, packing bfd (8 rows x 2,048, padding-free), completion-only loss,
                          gradient checkpointing, model in fp32 with attn_implementation="flex_attention"
  trl_packing_flex_lora   the same with LoRA r=8 (alpha 16, dropout 0.05) on q,k,v,o,gate,up,down
  trainer_padded          transformers Trainer, DataCollatorForSeq2Seq padding, micro-batch 4 x 4, sdpa
  ours_full, ours_lora    scripts/finetune.py with the flags in OURS_FULL_FLAGS / OURS_LORA_FLAGS below
  ours_full_compile       ours_full with torch_compile (OURS_FULL_COMPILE_FLAGS)
  fixed_trainer           every example exactly 2,048 tokens: plain Trainer, micro-batch 4 x 4, sdpa
  fixed_ours_full         the same data through finetune.py with FIXED_OURS_FLAGS
  fixed_ours_compile      the same with torch_compile (FIXED_OURS_COMPILE_FLAGS)
  fixed_ours_compile_chunked  fixed_ours_compile with our chunked loss instead of liger's (common/chunked_loss.py)
  fixed_ours_profile_chunked  fixed_ours_compile_chunked profiled as fixed_ours_profile
  fixed_ours_autotune     fixed_ours_compile with inductor's autotuning switched on (AUTOTUNE_ENV)
  fixed_ours_cudnn        fixed_ours_compile with sdpa served by cuDNN's attention (tests/gpu/sdpa_cudnn.py)
  fixed_ours_profile      fixed_ours_compile with steps 8-9 profiled (tests/gpu/profile_steps.py; table in its log)
  fixed_ours_profile_cudnn  the same with sdpa's flash kernel off (cuDNN's attention where it can serve)
  qlora7b_ours            Llama-2-7B shape (random, bf16, cached under --work), seq 1,024, finetune.py QLoRA
One 10-minute call does not hold them all: a cold flex_attention compile alone is ~270 s. The inductor
cache is shared by every row of one machine (while it stays warm), so only the first flex row compiles
cold; each row records `inductor_cache_warm`, and whole-run figures compare only rows with the same value
(--fresh_compile_cache gives every row a cold cache of its own). Suggested calls, in this order:
  1. trl_packing_flex_full,trainer_padded              (the cold compile; ~8 min with the 1B build)
  2. ours_full,ours_lora,trl_packing_flex_lora         (all warm)
  3. trl_packing_flex_full,fixed_trainer,fixed_ours_full   (TRL again, warm, for the whole-run figure)
  4. qlora7b_ours                                      (the 7B build, ~13 GB, is cached under --work)
--time_limit_s stops the row that would run past the call's limit and still writes the summary.

Figures (the same formula for every row): real tokens = the Trainer's num_input_tokens_seen (non-padding);
median-step tokens/s = real tokens / steps / median optimizer-step seconds; whole-run tokens/s = real tokens
/ train_runtime (first step, compilation and the one checkpoint save at the last step included); wall = the row's process, start to exit (for
finetune.py also tokenising and saving); peak = torch.cuda.max_memory_allocated of the row's process.
"""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(1, str(Path(__file__).resolve().parent))  # bench_sft's model and long-data builders

# ---- finetune.py's fast-path flags per row (the lead tunes these) -------------------------------------
# Appended after the shared flags (model, data, cutoff 2,048, steps, lr 1e-5, bf16, micro-batch 4 x 4), so a
# key repeated here wins. Packed rows use 8 rows x 2,048 tokens per step, as TRL's rows do.
OURS_FULL_FLAGS = ["--packing", "true", "--attn_implementation", "flex_attention", "--use_liger_kernel", "true",
                   "--gradient_checkpointing", "true",
                   "--per_device_train_batch_size", "8", "--gradient_accumulation_steps", "1"]  # fmt: skip
OURS_LORA_FLAGS = ["--use_lora", "--lora_target_modules", '["all"]', "--lora_r", "8",
                   "--packing", "true", "--attn_implementation", "flex_attention", "--use_liger_kernel", "true",
                   "--gradient_checkpointing", "true",
                   "--per_device_train_batch_size", "8", "--gradient_accumulation_steps", "1"]  # fmt: skip
FIXED_OURS_FLAGS = ["--attn_implementation", "sdpa", "--use_liger_kernel", "true"]
FIXED_OURS_CHUNKED_FLAGS = ["--attn_implementation", "sdpa", "--use_liger_kernel", "false"]  # our chunked loss
FIXED_OURS_COMPILE_FLAGS = [*FIXED_OURS_FLAGS, "--torch_compile", "true"]
FIXED_OURS_COMPILE_CHUNKED_FLAGS = [*FIXED_OURS_CHUNKED_FLAGS, "--torch_compile", "true"]
# Inductor's own search (its environment switches, so a user needs no new key): matmul templates tried against
# cuBLAS, and pointwise/reduction kernels tuned; it costs compile time on the first step only.
AUTOTUNE_ENV = (("TORCHINDUCTOR_MAX_AUTOTUNE", "1"), ("TORCHINDUCTOR_COORDINATE_DESCENT_TUNING", "1"))
# tests/gpu/profile_steps.py: where a step's GPU time goes (printed into the row's log)
PROFILE_ENV = (("PROFILE_AT_STEP", "8"), ("PROFILE_STEPS", "2"))
OURS_FULL_COMPILE_FLAGS = [*OURS_FULL_FLAGS, "--torch_compile", "true"]
QLORA7B_FLAGS = ["--use_lora", "--lora_target_modules", '["all"]', "--lora_r", "8",
                 "--quantization_bit", "4", "--quantization_type", "nf4", "--gradient_checkpointing", "true",
                 "--attn_implementation", "sdpa", "--learning_rate", "2e-4",
                 "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "8"]  # fmt: skip
# --smoke runs on CPU: these flags get CPU-safe values there (no flex compile, no liger kernels).
SMOKE_FLAG_VALUES = {"--attn_implementation": "sdpa", "--use_liger_kernel": "false"}

LLAMA2_7B_SHAPE = dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                       num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096)  # fmt: skip
LORA_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclasses.dataclass(frozen=True)
class Row:
    group: str  # mix (BELLE length mix), fixed (every example = fixed_seq tokens), qlora7b
    method: str  # full, lora, qlora
    runner: str  # trl, trainer (in a child of this script) or ours (scripts/finetune.py)
    flags: tuple[str, ...] = ()
    needs_cuda: bool = False  # skipped by --smoke
    env: tuple[tuple[str, str], ...] = ()  # environment variables set for this row only
    launcher: str = ""  # a script that runs finetune.py for an experiment row (ours only)


ROWS = {
    "trl_packing_flex_full": Row("mix", "full", "trl"),
    "trl_packing_flex_lora": Row("mix", "lora", "trl"),
    "trainer_padded": Row("mix", "full", "trainer"),
    "ours_full": Row("mix", "full", "ours", tuple(OURS_FULL_FLAGS)),
    "ours_lora": Row("mix", "lora", "ours", tuple(OURS_LORA_FLAGS)),
    "ours_full_compile": Row("mix", "full", "ours", tuple(OURS_FULL_COMPILE_FLAGS)),
    "fixed_trainer": Row("fixed", "full", "trainer"),
    "fixed_ours_full": Row("fixed", "full", "ours", tuple(FIXED_OURS_FLAGS)),
    "fixed_ours_chunked": Row("fixed", "full", "ours", tuple(FIXED_OURS_CHUNKED_FLAGS)),
    "fixed_ours_compile": Row("fixed", "full", "ours", tuple(FIXED_OURS_COMPILE_FLAGS)),
    "fixed_ours_compile_chunked": Row("fixed", "full", "ours", tuple(FIXED_OURS_COMPILE_CHUNKED_FLAGS)),
    "fixed_ours_profile_chunked": Row("fixed", "full", "ours", tuple(FIXED_OURS_COMPILE_CHUNKED_FLAGS),
                                      needs_cuda=True, env=PROFILE_ENV,
                                      launcher="tests/gpu/profile_steps.py"),  # fmt: skip
    "fixed_ours_autotune": Row("fixed", "full", "ours", tuple(FIXED_OURS_COMPILE_FLAGS), env=AUTOTUNE_ENV),
    "fixed_ours_cudnn": Row("fixed", "full", "ours", tuple(FIXED_OURS_COMPILE_FLAGS), needs_cuda=True,
                            launcher="tests/gpu/sdpa_cudnn.py"),  # fmt: skip
    "fixed_ours_profile": Row("fixed", "full", "ours", tuple(FIXED_OURS_COMPILE_FLAGS), needs_cuda=True,
                              env=PROFILE_ENV, launcher="tests/gpu/profile_steps.py"),  # fmt: skip
    "fixed_ours_profile_cudnn": Row("fixed", "full", "ours", tuple(FIXED_OURS_COMPILE_FLAGS), needs_cuda=True,
                                    env=(*PROFILE_ENV, ("SDPA_CUDNN", "1")),
                                    launcher="tests/gpu/profile_steps.py"),  # fmt: skip
    "qlora7b_ours": Row("qlora7b", "qlora", "ours", tuple(QLORA7B_FLAGS), needs_cuda=True),
}


@dataclasses.dataclass(frozen=True)
class Shape:
    records: int = 4096
    cutoff: int = 2048
    fixed_seq: int = 2048
    qlora_seq: int = 1024
    qlora_steps: int = 30  # 16 x 1,024 tokens a step on a 7B: ~3 s each
    model_7b_shape: tuple[tuple[str, int], ...] = tuple(LLAMA2_7B_SHAPE.items())


# Smoke: the tiny Llama, 64 records, short sequences, and a 7B-shaped model shrunk to 2 small layers.
SMOKE = Shape(records=64, cutoff=128, fixed_seq=64, qlora_seq=64, qlora_steps=4,
              model_7b_shape=tuple((LLAMA2_7B_SHAPE | dict(hidden_size=256, intermediate_size=688,
                                    num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4)).items()))  # fmt: skip


# ---- data ------------------------------------------------------------------------------------------------
def write_length_mix(
    path: Path, tokenizer_dir: Path, count: int, cutoff: int, seed: int = 0
) -> dict[str, float]:
    """Alpaca records with BELLE's length mix: slices of the shipped corpus of log-normal token lengths
    (prompt median 40, sigma 0.8, 5-400; response median 250, sigma 0.9, 5-1,800), decoded back to text.
    Returns the realised lengths of the rendered examples (belle template, bos and eos included, uncut)."""
    import numpy as np
    from transformers import AutoTokenizer

    from common.templates import encode_conversation, get_template

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    corpus = " ".join(line.strip() for f in sorted((REPO / "data_dir/pretrain").glob("*.txt"))
                      for line in f.open(encoding="utf-8") if line.strip())  # fmt: skip
    ids = tokenizer(corpus, add_special_tokens=False, verbose=False)["input_ids"]
    rng = np.random.default_rng(seed)
    prompt_lens = np.clip(np.rint(40 * np.exp(0.8 * rng.standard_normal(count))), 5, 400).astype(int)
    response_lens = np.clip(np.rint(250 * np.exp(0.9 * rng.standard_normal(count))), 5, 1800).astype(int)

    def text_of(length: int) -> str:
        while True:  # a slice of only spaces or broken bytes decodes to nothing: take another
            start = int(rng.integers(0, len(ids) - length))
            text = tokenizer.decode(ids[start : start + length]).replace("\ufffd", "").strip()  # cut chars
            if text:
                return text

    template, lengths = get_template("belle"), []
    with open(path, "w", encoding="utf-8") as out:
        for prompt_len, response_len in zip(prompt_lens, response_lens, strict=True):
            record = {"instruction": text_of(prompt_len), "input": "", "output": text_of(response_len)}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            messages = [{"role": "user", "content": record["instruction"]},
                        {"role": "assistant", "content": record["output"]}]  # fmt: skip
            lengths.append(len(encode_conversation(template, tokenizer, messages, None, 10**9)["input_ids"]))
    lengths_array, sampled = np.array(lengths), prompt_lens + response_lens
    return {
        "records": count,
        "prompt_tokens_median_sampled": float(np.median(prompt_lens)),
        "response_tokens_median_sampled": float(np.median(response_lens)),
        "sampled_tokens_mean": round(float(sampled.mean()), 1),  # prompt + response as drawn, no template
        "sampled_tokens_p50": float(np.percentile(sampled, 50)),
        "sampled_tokens_p99": float(np.percentile(sampled, 99)),
        "example_tokens_mean": round(float(lengths_array.mean()), 1),
        "example_tokens_p50": float(np.percentile(lengths_array, 50)),
        "example_tokens_p99": float(np.percentile(lengths_array, 99)),
        "example_tokens_max": int(lengths_array.max()),
        f"examples_over_{cutoff}": int((lengths_array > cutoff).sum()),
    }


# ---- models (run in a child process, so this one never holds GPU memory) -------------------------------
def build_llama2_7b_shaped(path: Path, tokenizer_dir: Path, shape: dict[str, int], device: str) -> None:
    """A random Llama-2-7B-shaped model made directly in bf16 on `device` and saved once (13 GB)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    if (path / "config.json").is_file():
        cached = json.loads((path / "config.json").read_text())
        if any(cached.get(key) != value for key, value in shape.items()):
            raise SystemExit(f"{path} holds a model of another shape; remove it or choose another --work")
        print(f"using the cached {path}", flush=True)
        return
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(**shape, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)  # fmt: skip
    torch.manual_seed(0)
    start, default_dtype = time.perf_counter(), torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(default_dtype)
    partial = path.with_name(path.name + ".partial")  # renamed when complete: a killed save is not a cache
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    partial.rename(path)
    print(f"built {path}: {sum(p.numel() for p in model.parameters()) / 1e9:.2f} B parameters "
          f"in {time.perf_counter() - start:.0f} s", flush=True)  # fmt: skip


# ---- rows run in a child of this script --------------------------------------------------------------
def training_kwargs(spec: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """What every in-process row shares with finetune.py's defaults (cosine, 10 warm-up steps, seed 42). Like
    finetune.py's rows, each saves one checkpoint, at its last step, inside train_runtime."""
    return dict(
        output_dir=str(run_dir), max_steps=spec["steps"], learning_rate=1e-5, lr_scheduler_type="cosine",
        warmup_steps=10, logging_steps=1, save_strategy="steps", save_steps=spec["steps"], report_to=[],
        seed=42, data_seed=42,
        bf16=spec["cuda"], use_cpu=not spec["cuda"], dataloader_pin_memory=spec["cuda"],
        include_num_input_tokens_seen="non_padding",
    )  # fmt: skip


def run_trl(spec: dict[str, Any], run_dir: Path, lora: bool) -> dict[str, Any]:
    """TRL's packed SFT on prompt/completion records rendered with the belle template's prompt."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    from common.data import load_mixed, resolve_specs
    from common.modeling import load_tokenizer
    from common.runs import step_timer_callback
    from common.templates import BOS, get_template, render_pieces

    tokenizer = load_tokenizer(spec["model_dir"])
    template = get_template("belle")
    records = load_mixed(resolve_specs(None, spec["data"], "data_dir"), "data_dir", False, None, 42)
    rows = {  # the tokenizer adds <s> itself; TRL adds the eos after the completion
        "prompt": [render_pieces(template, r["messages"])[0][0].replace(BOS, "") for r in records],
        "completion": [r["messages"][1]["content"] for r in records],
    }
    model = AutoModelForCausalLM.from_pretrained(spec["model_dir"], dtype=torch.float32,
                                                 attn_implementation=spec["attn"])  # fmt: skip
    config = SFTConfig(packing=True, packing_strategy="bfd", max_length=spec["cutoff"],
                       per_device_train_batch_size=8, gradient_accumulation_steps=1, completion_only_loss=True,
                       gradient_checkpointing=True, **training_kwargs(spec, run_dir))  # fmt: skip
    peft_config = None
    if lora:
        from peft import LoraConfig

        peft_config = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules=LORA_PROJECTIONS,
                                 task_type="CAUSAL_LM")  # fmt: skip
    timer = step_timer_callback()
    trainer = SFTTrainer(model=model, args=config, train_dataset=Dataset.from_dict(rows),
                         processing_class=tokenizer, peft_config=peft_config, callbacks=[timer])  # fmt: skip
    return measure(trainer, timer) | {"attn_implementation": spec["attn"]}


def run_trainer(spec: dict[str, Any], run_dir: Path, fixed_seq: int | None) -> dict[str, Any]:
    """The plain Trainer on our tokenised examples (the ids finetune.py trains on), padded per micro-batch."""
    import torch
    from transformers import AutoModelForCausalLM, DataCollatorForSeq2Seq, Trainer, TrainingArguments

    from common.data import load_tokenised, resolve_specs
    from common.modeling import load_tokenizer
    from common.runs import step_timer_callback

    tokenizer = load_tokenizer(spec["model_dir"])
    cutoff = fixed_seq or spec["cutoff"]
    examples = load_tokenised(resolve_specs(None, spec["data"], "data_dir"), tokenizer, "belle", cutoff,
                              cache_dir=None)  # fmt: skip
    lengths = [len(ids) for ids in examples["input_ids"]]
    examples = examples.select([i for i, n in enumerate(lengths) if n])
    if fixed_seq and set(lengths) != {fixed_seq}:
        raise SystemExit(
            f"fixed-length data: example lengths {sorted(set(lengths))[:5]}, not all {fixed_seq}"
        )
    model = AutoModelForCausalLM.from_pretrained(
        spec["model_dir"], dtype=torch.float32, attn_implementation="sdpa"
    )
    model.config.use_cache = False
    args = TrainingArguments(per_device_train_batch_size=4, gradient_accumulation_steps=4,
                             **training_kwargs(spec, run_dir))  # fmt: skip
    collator = DataCollatorForSeq2Seq(tokenizer, pad_to_multiple_of=8 if spec["cuda"] else None)
    timer = step_timer_callback()
    trainer = Trainer(model=model, args=args, train_dataset=examples, data_collator=collator,
                      processing_class=tokenizer, callbacks=[timer])  # fmt: skip
    return measure(trainer, timer) | {"attn_implementation": "sdpa"}


def measure(trainer: Any, timer: Any) -> dict[str, Any]:
    import torch

    runtime = trainer.train().metrics["train_runtime"]
    state = trainer.state
    tokens, steps, median = state.num_input_tokens_seen, state.global_step, statistics.median(timer.durations)
    losses = [entry["loss"] for entry in state.log_history if "loss" in entry]
    return {
        "tokens_per_second_median_step": tokens / steps / median,
        "tokens_per_second_whole_run": tokens / runtime,
        "first_step_seconds": timer.durations[0],
        "median_step_seconds": median,
        "train_runtime": runtime,
        "real_tokens": tokens,
        "steps": steps,
        **loss_summary(losses),
        "peak_gpu_memory_gib": torch.cuda.max_memory_allocated() / 2**30
        if torch.cuda.is_available()
        else None,
    }


def loss_summary(losses: list[float]) -> dict[str, Any]:
    """First and last logged loss; it fell when the last quarter's mean is below the first quarter's."""
    if not losses:
        return {"first_loss": None, "final_loss": None, "loss_fell": None}
    quarter = max(1, len(losses) // 4)
    fell = statistics.mean(losses[-quarter:]) < statistics.mean(losses[:quarter])
    return {"first_loss": losses[0], "final_loss": losses[-1], "loss_fell": fell}


def child_main(task: str, spec: dict[str, Any]) -> None:
    """One row (or a model build) in this process; the result goes to <run_dir>/bench_row.json."""
    from common.runs import setup_logging

    setup_logging()
    run_dir = Path(spec["run_dir"])
    if task == "build_llama_1b":
        from bench_sft import build_model

        build_model(Path(spec["model_dir"]), Path(spec["tokenizer_dir"]))
        return
    if task == "build_llama2_7b":
        build_llama2_7b_shaped(
            Path(spec["model_dir"]), Path(spec["tokenizer_dir"]), spec["shape"], spec["device"]
        )
        return
    if task.startswith("trl_"):
        result = run_trl(spec, run_dir, lora=task.endswith("_lora"))
    else:
        result = run_trainer(spec, run_dir, spec["fixed_seq"] if task.startswith("fixed_") else None)
    (run_dir / "bench_row.json").write_text(json.dumps(result) + "\n")


# ---- the parent: inputs, one process per row, results ---------------------------------------------------
@dataclasses.dataclass
class Bench:
    out: Path
    work: Path
    steps: int
    smoke: bool
    shape: Shape
    deadline: float
    fresh_compile_cache: bool
    cuda: bool
    tokenizer_dir: Path = REPO / "models/tiny-llama"
    model_1b: Path | None = None
    data: dict[str, Path] = dataclasses.field(default_factory=dict)

    def spawn(
        self, command: list[str], log: Path, env: dict[str, str] | None = None
    ) -> tuple[int | str, float]:
        """Run `command` with its output in `log`; (exit code, "timeout" or "not_started", seconds). A row
        that would run past --time_limit_s is stopped (its process group) so the summary still gets written."""
        remaining = self.deadline - time.time() - 20
        if remaining < 30:
            return "not_started", 0.0
        start = time.perf_counter()
        with open(log, "w") as handle:
            proc = subprocess.Popen(command, cwd=REPO, stdout=handle, stderr=subprocess.STDOUT,
                                    env=env, start_new_session=True)  # fmt: skip
            try:
                code: int | str = proc.wait(timeout=None if remaining == float("inf") else remaining)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                code = "timeout"
        return code, time.perf_counter() - start

    def child(self, task: str, spec: dict[str, Any], log: Path, env: dict[str, str] | None = None):
        return self.spawn([sys.executable, __file__, "--child", task, "--spec", json.dumps(spec)], log, env)


def failure_status(code: int | str) -> str:
    return code if code in ("timeout", "not_started") else "error"


def log_tail(log: Path, chars: int = 3000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.is_file() else ""


def prepare_inputs(bench: Bench, names: list[str]) -> dict[str, Any]:
    """Models and data files the chosen rows need; returns the realised length statistics."""
    groups = {ROWS[n].group for n in names}
    bench.work.mkdir(parents=True, exist_ok=True)
    stats: dict[str, Any] = {}
    if groups & {"mix", "fixed"}:
        if bench.smoke:
            bench.model_1b = bench.tokenizer_dir
        else:
            bench.model_1b = Path("/tmp/llama-1b")  # bench_sft.py's cache: one build per machine
            spec = {
                "model_dir": str(bench.model_1b),
                "tokenizer_dir": str(bench.tokenizer_dir),
                "run_dir": "",
            }
            code, seconds = bench.child("build_llama_1b", spec, bench.out / "build_llama_1b.log")
            print(f"1B model: {bench.model_1b} (exit {code}, {seconds:.0f} s)", flush=True)
            if code != 0:
                raise SystemExit(
                    f"building the 1B model failed:\n{log_tail(bench.out / 'build_llama_1b.log')}"
                )
    if "mix" in groups:
        bench.data["mix"] = bench.work / f"length_mix_{bench.shape.records}.json"
        stats["mix"] = write_length_mix(
            bench.data["mix"], bench.tokenizer_dir, bench.shape.records, bench.shape.cutoff
        )
        print("length mix (belle template, uncut):", json.dumps(stats["mix"]), flush=True)
    from bench_sft import write_long_sft

    if "fixed" in groups:  # 16 examples a step, cycled: 512 distinct examples are plenty
        bench.data["fixed"] = bench.work / f"long_sft_{bench.shape.fixed_seq}.json"
        write_long_sft(
            bench.data["fixed"], bench.tokenizer_dir, bench.shape.fixed_seq, min(512, 16 * bench.steps)
        )
    if "qlora7b" in groups:
        bench.data["qlora7b"] = bench.work / f"long_sft_{bench.shape.qlora_seq}.json"
        write_long_sft(bench.data["qlora7b"], bench.tokenizer_dir, bench.shape.qlora_seq,
                       min(512, 16 * bench.shape.qlora_steps))  # fmt: skip
    return stats


def run_ours(bench: Bench, name: str, row: Row, run_dir: Path, env: dict[str, str]) -> dict[str, Any]:
    """scripts/finetune.py in its own process; figures from the metrics and trainer state it writes."""
    steps = bench.shape.qlora_steps if row.group == "qlora7b" else bench.steps
    seq = {"mix": bench.shape.cutoff, "fixed": bench.shape.fixed_seq, "qlora7b": bench.shape.qlora_seq}[
        row.group
    ]
    model = bench.work / "llama2-7b-shaped" if row.group == "qlora7b" else bench.model_1b
    flags = list(row.flags)
    if bench.smoke:
        flags = [SMOKE_FLAG_VALUES.get(flags[i - 1], f) if i else f for i, f in enumerate(flags)]
    launcher = [row.launcher] if row.launcher else []
    command = [sys.executable, *launcher, "scripts/finetune.py", "--model_name_or_path", str(model),
               "--data_path", str(bench.data[row.group]), "--template", "belle", "--cutoff_len", str(seq),
               "--max_steps", str(steps), "--learning_rate", "1e-5",
               "--precision", "bf16" if bench.cuda else "fp32", "--val_set_size", "0",
               "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "4",
               "--save_steps", "100000", "--logging_steps", "1", "--report_to", "none",
               "--output_dir", str(run_dir), *flags]  # fmt: skip
    log = bench.out / f"{name}.log"
    code, wall = bench.spawn(command, log, env)
    result: dict[str, Any] = {"command": " ".join(command), "wall_seconds": round(wall, 1)}
    if code != 0:
        error = log_tail(log)
        rejected = "unknown key" in error or "invalid choice" in error
        status = "skipped" if bench.smoke and rejected else failure_status(code)
        return result | {"status": status, "error": error}
    figures = read_finetune_outputs(run_dir)
    for weights in [*run_dir.glob("*.safetensors"), *run_dir.glob("checkpoint-*")]:  # 5 GB a full run
        if weights.is_dir():
            shutil.rmtree(weights)
        else:
            weights.unlink()
    return result | {"status": "ok"} | figures


def read_finetune_outputs(run_dir: Path) -> dict[str, Any]:
    metrics = json.loads((run_dir / "train_results.json").read_text())
    state = json.loads((run_dir / "trainer_state.json").read_text())
    steps = state["global_step"]
    tokens = metrics.get("train_real_tokens", state["num_input_tokens_seen"])
    median, runtime = metrics["train_step_seconds_median"], metrics["train_runtime"]
    losses = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
    first_step = metrics.get("train_first_step_seconds")
    resolved = json.loads((run_dir / "finetune_config.json").read_text()).get("_resolved", {})
    return {
        "tokens_per_second_median_step": tokens / steps / median,
        "tokens_per_second_whole_run": metrics.get("train_tokens_per_second", tokens / runtime),
        # older finetune.py did not write it: then the run time beyond (steps - 1) median steps
        "first_step_seconds": first_step if first_step is not None else runtime - (steps - 1) * median,
        "first_step_seconds_estimated": first_step is None,
        "median_step_seconds": median,
        "train_runtime": runtime,
        "real_tokens": tokens,
        "steps": steps,
        **loss_summary(losses),
        "peak_gpu_memory_gib": metrics.get("peak_gpu_memory_gib"),
        "finetune_resolved": resolved,
    }


def build_7b(bench: Bench) -> dict[str, Any] | None:
    """The Llama-2-7B-shaped model (--smoke: the same code on a shrunk shape, on CPU); None or the failure."""
    log = bench.out / "build_llama2_7b.log"
    spec = {"model_dir": str(bench.work / "llama2-7b-shaped"), "tokenizer_dir": str(bench.tokenizer_dir),
            "run_dir": "", "shape": dict(bench.shape.model_7b_shape), "device": "cuda" if bench.cuda else "cpu"}  # fmt: skip
    code, seconds = bench.child("build_llama2_7b", spec, log)
    print(f"7B-shaped model: {spec['model_dir']} (exit {code}, {seconds:.0f} s)", flush=True)
    if code == 0:
        return None
    return {"status": failure_status(code), "error": "model build: " + log_tail(log)}


def run_row(bench: Bench, name: str) -> dict[str, Any]:
    row = ROWS[name]
    base = {"name": name, "group": row.group, "method": row.method} | ({"env": dict(row.env)} if row.env else {})
    if row.group == "qlora7b" and (failure := build_7b(bench)):
        return base | failure
    if row.needs_cuda and not bench.cuda:
        return base | {
            "status": "skipped",
            "error": "needs CUDA (bitsandbytes 4-bit); only its model build ran",
        }
    run_dir = bench.work / "runs" / name
    shutil.rmtree(run_dir, ignore_errors=True)  # this bench's own scratch folder for the row, not a user's
    run_dir.mkdir(parents=True)
    env = dict(os.environ) | dict(row.env)
    if bench.fresh_compile_cache:
        env["TORCHINDUCTOR_CACHE_DIR"] = str(run_dir / "inductor-cache")
    # torch's default cache folder; an earlier flex row of this machine leaves compiled kernels there
    cache = Path(env.get("TORCHINDUCTOR_CACHE_DIR") or f"/tmp/torchinductor_{getpass.getuser()}")
    base["inductor_cache_warm"] = cache.is_dir() and any(cache.iterdir())
    if row.runner == "ours":
        return base | run_ours(bench, name, row, run_dir, env)
    spec = {"model_dir": str(bench.model_1b), "data": str(bench.data[row.group]), "run_dir": str(run_dir),
            "steps": bench.steps, "cutoff": bench.shape.cutoff, "fixed_seq": bench.shape.fixed_seq,
            "cuda": bench.cuda, "attn": "flex_attention" if bench.cuda else "sdpa"}  # fmt: skip
    log = bench.out / f"{name}.log"
    code, wall = bench.child(name, spec, log, env)
    for checkpoint in run_dir.glob("checkpoint-*"):  # 15 GB a full row; the disk holds few
        shutil.rmtree(checkpoint)
    if code != 0:
        return base | {"status": failure_status(code), "wall_seconds": round(wall, 1),
                       "error": log_tail(log)}  # fmt: skip
    return (
        base
        | {"status": "ok", "wall_seconds": round(wall, 1)}
        | json.loads((run_dir / "bench_row.json").read_text())
    )


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """Rows with ratios: ours / the best TRL row of the same method, ours / the plain Trainer of its group."""

    def speed(r: dict[str, Any]) -> float | None:
        return r.get("tokens_per_second_median_step") if r.get("status") == "ok" else None

    def best(candidates: list[dict[str, Any]]) -> float | None:
        speeds = [s for s in map(speed, candidates) if s]
        return max(speeds) if speeds else None

    def fmt(value: Any, pattern: str) -> str:
        return "—" if value is None else format(value, pattern)

    lines = ["| row | status | median-step tok/s | whole-run tok/s | wall s | first step s | peak GiB "
             "| first → final loss | steps | compile cache | ours/TRL | ours/Trainer |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- | ---: | ---: |"]  # fmt: skip
    cache_state = {True: "warm", False: "cold"}
    for r in rows:
        ratio_trl = ratio_trainer = None
        if ROWS[r["name"]].runner == "ours" and speed(r):
            same_group = [o for o in rows if o["group"] == r["group"]]
            trl = best(
                [o for o in same_group if ROWS[o["name"]].runner == "trl" and o["method"] == r["method"]]
            )
            trainer = best([o for o in same_group if ROWS[o["name"]].runner == "trainer"])
            ratio_trl = speed(r) / trl if trl else None
            ratio_trainer = speed(r) / trainer if trainer else None
        first = "~" if r.get("first_step_seconds_estimated") else ""
        lines.append(
            f"| {r['name']} | {r['status']} | {fmt(speed(r), ',.0f')} | {fmt(r.get('tokens_per_second_whole_run'), ',.0f')} "
            f"| {fmt(r.get('wall_seconds'), '.0f')} | {first}{fmt(r.get('first_step_seconds'), '.1f')} "
            f"| {fmt(r.get('peak_gpu_memory_gib'), '.1f')} "
            f"| {fmt(r.get('first_loss'), '.3f')} → {fmt(r.get('final_loss'), '.3f')} | {fmt(r.get('steps'), 'd')} "
            f"| {cache_state.get(r.get('inductor_cache_warm'), '—')} | {fmt(ratio_trl, '.2f')} | {fmt(ratio_trainer, '.2f')} |"
        )
    lines.append("\nours/TRL: median-step tokens/s over the best TRL row of the same group and method; "
                 "ours/Trainer: over the plain Trainer row of the same group (full fine-tuning); "
                 "~: first step estimated from train_runtime.")  # fmt: skip
    return "\n".join(lines)


def environment() -> dict[str, Any]:
    try:
        gpu = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        gpu = None
    versions: dict[str, str | None] = {}
    for package in ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "bitsandbytes",
                    "liger-kernel", "triton"):  # fmt: skip
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {"gpu": gpu, "versions": versions}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, help="results: bench_mix.jsonl/.json/.md and one log per row")
    parser.add_argument(
        "--steps", type=int, help="optimizer steps per row, QLoRA's own aside (100; --smoke: 4)"
    )
    parser.add_argument("--only", default="", help=f"comma-separated rows, of: {', '.join(ROWS)}")
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny model, 64 records, 4 steps")
    parser.add_argument(
        "--work", type=Path, default=Path("/tmp/bench_mix"), help="data, 7B model, run folders"
    )
    parser.add_argument(
        "--time_limit_s", type=float, help="stop rows that run past this (560; --smoke: none)"
    )
    parser.add_argument("--fresh_compile_cache", action="store_true", help="a cold inductor cache per row")
    parser.add_argument("--qlora_steps", type=int, help="optimizer steps of the 7B QLoRA row (30; --smoke: 4)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    if opts.child:
        child_main(opts.child, json.loads(opts.spec))
        return 0
    if opts.out is None:
        parser.error("--out is required")
    names = [n for n in opts.only.split(",") if n] or list(ROWS)
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        parser.error(f"unknown row(s) {', '.join(unknown)}; rows: {', '.join(ROWS)}")
    started = time.time()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")  # the GPU README's settings, inherited by every row
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if opts.smoke:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # the smoke run is the CPU run, also on a GPU machine

    # ---- inputs -------------------------------------------------------------------------------------------
    cuda = not opts.smoke and shutil.which("nvidia-smi") is not None
    time_limit = opts.time_limit_s or (float("inf") if opts.smoke else 560)
    bench = Bench(out=opts.out, work=opts.work / "smoke" if opts.smoke else opts.work,
                  steps=opts.steps or (4 if opts.smoke else 100), smoke=opts.smoke,
                  shape=dataclasses.replace(SMOKE if opts.smoke else Shape(),
                                            **({"qlora_steps": opts.qlora_steps} if opts.qlora_steps else {})),
                  deadline=started + time_limit,
                  fresh_compile_cache=opts.fresh_compile_cache, cuda=cuda)  # fmt: skip
    if not opts.smoke and not cuda:
        parser.error("no GPU visible (nvidia-smi); on a CPU machine use --smoke")
    opts.out.mkdir(parents=True, exist_ok=True)
    if not (bench.tokenizer_dir / "tokenizer.json").is_file():
        subprocess.run(
            [sys.executable, "scripts/build_tiny_models.py", "--archs", "llama"], cwd=REPO, check=True
        )
    data_stats = prepare_inputs(bench, names)

    # ---- rows ---------------------------------------------------------------------------------------------
    rows, jsonl = [], opts.out / "bench_mix.jsonl"
    jsonl.unlink(missing_ok=True)
    for name in names:
        print(f"---- {name} ({time.time() - started:.0f} s into the bench)", flush=True)
        row = run_row(bench, name)
        rows.append(row)
        with open(jsonl, "a") as handle:
            handle.write(json.dumps(row) + "\n")
        shown = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()
                 if k not in ("error", "command", "finetune_resolved")}  # fmt: skip
        print(json.dumps(shown), flush=True)
        if row.get("error"):
            print(
                f"{name} {row['status']}; the end of its log ({opts.out / (name + '.log')}):\n{row['error'][-1500:]}"
            )

    # ---- summary ------------------------------------------------------------------------------------------
    table = markdown_table(rows)
    summary = environment() | {
        "command": " ".join([sys.executable, *sys.argv]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "smoke": opts.smoke,
        "steps": bench.steps,
        "shape": dataclasses.asdict(bench.shape),
        "data": data_stats,
        "rows": rows,
    }
    (opts.out / "bench_mix.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    (opts.out / "bench_mix.md").write_text(table + "\n")
    print(table)
    failed = [f"{r['name']} ({r['status']})" for r in rows if r["status"] not in ("ok", "skipped")]
    print(
        f"bench took {time.time() - started:.0f} s; "
        + (f"FAILED: {', '.join(failed)}" if failed else "no row failed")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
