"""Supervised fine-tuning (SFT) of a causal LM on BELLE/alpaca instruction data.

Full fine-tuning, LoRA (`--use_lora`) or freeze (`--trainable_layers N`: only the last N blocks learn),
with the transformers Trainer. The same file runs under every launcher, as in BELLE:

    python scripts/finetune.py --model_config_file run_config/tiny/Llama_config.json
    torchrun --nproc_per_node=8 scripts/finetune.py --model_config_file run_config/Llama_config.json \\
        --lora_hyperparams_file run_config/lora_hyperparams_llama.json --use_lora
    deepspeed --num_gpus=8 scripts/finetune.py --model_config_file run_config/Bloom_config.json \\
        --deepspeed run_config/deepspeed_config.json

Settings: defaults below < `--model_config_file` < `--lora_hyperparams_file` < flags (`--help`).
The output folder gets the resolved config (`finetune_config.json`), `run_manifest.json`,
checkpoints, and at the end the model (or LoRA adapter) with its tokenizer.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a file: find `common`

from common.config import ConfigError, config_field, config_to_dict, parse_config  # noqa: E402
from common.data import DataError, split_train_dev  # noqa: E402
from common.families import FAMILIES  # noqa: E402
from common.runs import (  # noqa: E402
    RunError,
    TrainerRunGuard,
    prepare_run_dir,
    setup_logging,
    setup_wandb,
    step_timer_callback,
    write_run_record,
)

logger = logging.getLogger("finetune")

# Default LoRA targets by model_type, from the family table (python -m common.families prints it).
LORA_TARGETS = {model_type: list(family.lora_targets) for model_type, family in FAMILIES.items()}


@dataclasses.dataclass
class FinetuneConfig:
    # Model
    model_type: str = config_field(
        "llama", "model family; chooses default LoRA targets (the weights' config decides the architecture)"
    )
    model_name_or_path: str = config_field("models/tiny-llama", "local folder or hub name of the base model")
    # Data
    data_path: str = config_field(
        "data_dir/sample_sft.train.json",
        "one data file (JSON lines or array): alpaca/BELLE, ShareGPT `conversations` or OpenAI `messages`",
    )
    dataset: str | None = config_field(
        None,
        "registered dataset name(s), comma-separated, from dataset_dir/dataset_info.json (wins over data_path)",
    )
    dataset_dir: str = config_field("data_dir", "folder holding dataset_info.json and its files")
    template: str = config_field(
        "belle", "prompt format: belle, alpaca, vicuna, llama2, llama3, mistral, chatml, ..., or tokenizer"
    )
    max_samples: int | None = config_field(None, "use at most N records of each dataset (null: all)")
    skip_bad_records: bool = config_field(
        False, "skip malformed records (counted and logged) instead of stopping with a list of them"
    )
    preprocessing_num_workers: int | None = config_field(None, "processes for tokenisation (null: one)")
    cache_dir: str | None = config_field(
        ".cache/tokenised", "reuse tokenised data from an identical earlier run (null: no cache)"
    )
    cutoff_len: int = config_field(
        512, "maximum tokens per example (prompt + response + eos); longer ones are cut"
    )
    train_on_inputs: bool = config_field(
        False, "also train on the prompt tokens (default: labels only on the response)"
    )
    val_set_size: int = config_field(
        1000, "examples held out for evaluation (capped by val_set_rate; 0 = none)"
    )
    val_set_rate: float = config_field(0.1, "largest share of the data that may be held out")
    # Training
    output_dir: str = config_field(
        "trained_models/tiny-llama", "where checkpoints, the final model and the run record go"
    )
    batch_size: int = config_field(
        32, "global batch size; sets gradient_accumulation_steps when that is null"
    )
    per_device_train_batch_size: int = config_field(4, "examples per device per forward pass")
    per_device_eval_batch_size: int = config_field(4, "examples per device per evaluation pass")
    gradient_accumulation_steps: int | None = config_field(
        None, "micro-batches per optimizer step (null: from batch_size)"
    )
    num_epochs: float = config_field(2.0, "passes over the training data")
    max_steps: int = config_field(-1, "stop after this many optimizer steps (-1: run num_epochs)")
    learning_rate: float = config_field(2e-5, "peak learning rate")
    lr_scheduler_type: str = config_field(
        "cosine", "transformers schedule name: linear, cosine, constant, ..."
    )
    warmup_steps: int = config_field(10, "linear warm-up steps")
    weight_decay: float = config_field(0.0, "AdamW weight decay")
    gradient_checkpointing: bool = config_field(False, "recompute activations to save memory")
    logging_steps: int = config_field(10, "log loss every N steps")
    save_steps: int = config_field(1000, "save a checkpoint every N steps")
    eval_steps: int = config_field(1000, "evaluate every N steps (when there is a held-out set)")
    save_total_limit: int | None = config_field(3, "keep at most this many checkpoints (null: all)")
    seed: int = config_field(42, "seed for the split, initialisation of new weights, and data order")
    precision: str = config_field(
        "auto", "auto (bf16 on GPUs that have it, else fp16; fp32 on CPU), bf16, fp16 or fp32"
    )
    fp16: bool | None = config_field(None, "BELLE compatibility: true forces precision fp16")
    bf16: bool | None = config_field(None, "BELLE compatibility: true forces precision bf16")
    # Method
    use_lora: bool = config_field(False, "train a LoRA adapter instead of the full model")
    lora_r: int = config_field(8, "LoRA rank")
    lora_alpha: int = config_field(16, "LoRA scaling numerator (scale = alpha / r)")
    lora_dropout: float = config_field(0.05, "dropout on the LoRA input")
    lora_target_modules: list[str] | None = config_field(
        None, 'module names to adapt, or ["all"] (null: by model_type)'
    )
    trainable_layers: int = config_field(
        0, "freeze fine-tuning: train only the last N decoder layers (0: train all)"
    )
    # Run management
    deepspeed: str | None = config_field(
        None, "DeepSpeed JSON config (e.g. run_config/deepspeed_config.json)"
    )
    resume_from_checkpoint: str | None = config_field(
        None, "true: newest complete checkpoint in output_dir; or a checkpoint folder"
    )
    overwrite_output_dir: bool = config_field(
        False, "allow writing into an output_dir that already holds a run"
    )
    report_to: str = config_field("none", "none or wandb (offline when there is no API key)")
    wandb_project: str = config_field("belle-finetune", "W&B project name")
    run_name: str | None = config_field(None, "W&B run name (default: the output folder's name)")
    local_rank: int = config_field(-1, "set by the deepspeed launcher; leave it alone")

    def validate(self) -> None:
        if self.use_lora and self.trainable_layers:
            raise ConfigError("use_lora and trainable_layers are two different methods; choose one")
        if self.precision not in ("auto", "bf16", "fp16", "fp32"):
            raise ConfigError(f"precision must be auto, bf16, fp16 or fp32, got {self.precision!r}")
        if self.fp16 and self.bf16:
            raise ConfigError("fp16 and bf16 are both true; choose one")
        if self.cutoff_len < 2:
            raise ConfigError(f"cutoff_len must be at least 2, got {self.cutoff_len}")
        if self.report_to not in ("none", "wandb"):
            raise ConfigError(f"report_to must be none or wandb, got {self.report_to!r}")
        from common.templates import TEMPLATE_NAMES

        if self.template not in TEMPLATE_NAMES:
            raise ConfigError(
                f"unknown template {self.template!r}; choose one of {', '.join(TEMPLATE_NAMES)}"
            )
        if self.max_samples is not None and self.max_samples < 1:
            raise ConfigError(f"max_samples must be at least 1 (or null), got {self.max_samples}")


def main(argv: list[str] | None = None) -> Path:
    setup_logging()
    # ---- Config -------------------------------------------------------------------------------
    config = parse_config(
        FinetuneConfig,
        argv,
        description=__doc__,
        config_file_flags={
            "model_config_file": "run config (BELLE's Bloom_config.json / Llama_config.json keys)",
            "lora_hyperparams_file": "LoRA hyper-parameters (lora_r, lora_alpha, lora_dropout, lora_target_modules)",
        },
    )
    import torch
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments, set_seed

    from common.modeling import (
        count_parameters,
        freeze_all_but_last_layers,
        load_causal_lm,
        load_tokenizer,
        pick_precision,
        torch_dtype,
    )
    from common.training import gradient_accumulation, trainer_arguments

    output_dir, checkpoint = prepare_run_dir(config)

    precision = "bf16" if config.bf16 else "fp16" if config.fp16 else pick_precision(config.precision)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    grad_accum = gradient_accumulation(config)
    resolved = config_to_dict(config) | {
        "_resolved": {
            "precision": precision,
            "world_size": world_size,
            "gradient_accumulation_steps": grad_accum,
        }
    }
    set_seed(config.seed)

    # ---- Data ---------------------------------------------------------------------------------
    # Records of any supported format are normalised to conversations, rendered with the template and
    # tokenised in batches; an identical earlier run's result is reused from cache_dir.
    from common.data import load_tokenised, resolve_specs, spec_files

    tokenizer = load_tokenizer(config.model_name_or_path)
    specs = resolve_specs(config.dataset, config.data_path, config.dataset_dir)
    data_files = spec_files(specs, config.dataset_dir) + [s.hf_hub_url for s in specs if s.hf_hub_url]
    tokenised = load_tokenised(specs, tokenizer, config.template, config.cutoff_len,
                               dataset_dir=config.dataset_dir, train_on_inputs=config.train_on_inputs,
                               max_samples=config.max_samples, seed=config.seed,
                               skip_bad_records=config.skip_bad_records,
                               num_proc=config.preprocessing_num_workers,
                               cache_dir=config.cache_dir)  # fmt: skip
    dev_size = min(config.val_set_size, int(len(tokenised) * config.val_set_rate))
    train_index, dev_index = split_train_dev(list(range(len(tokenised))), dev_size, config.seed)
    kept = [len(ids) > 0 for ids in tokenised["input_ids"]]  # empty: no answer token fits in cutoff_len
    if not all(kept):
        logger.warning("dropped %d examples with no answer token left after cutting to cutoff_len=%d",
                       kept.count(False), config.cutoff_len)  # fmt: skip
    train_examples = tokenised.select([i for i in train_index if kept[i]])
    dev_examples = tokenised.select([i for i in dev_index if kept[i]])
    data_name = config.dataset or config.data_path
    if not len(train_examples):
        raise DataError(f"{data_name}: no training example left after cutting to cutoff_len")
    logger.info("examples: %d train, %d held out, from %s (template %s)", len(train_examples),
                len(dev_examples), data_name, config.template)  # fmt: skip

    # ---- Model --------------------------------------------------------------------------------
    # Full and freeze fine-tuning keep fp32 weights (mixed precision autocasts); LoRA stores the frozen
    # base in half precision and PEFT keeps the adapter weights in fp32.
    load_dtype = torch_dtype(precision) if config.use_lora else torch.float32
    model = load_causal_lm(config.model_name_or_path, dtype=load_dtype)
    model.config.use_cache = False  # the KV cache is for generation; in training it only costs memory
    if config.use_lora:
        from peft import LoraConfig, get_peft_model

        from common.families import lora_target_modules

        try:
            targets = lora_target_modules(model, config.lora_target_modules)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        logger.info("LoRA targets: %s", ", ".join(targets))
        lora = LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=targets,
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, lora)
        if config.gradient_checkpointing:
            model.enable_input_require_grads()  # checkpointed blocks need a grad-requiring input
    elif config.trainable_layers:
        names = freeze_all_but_last_layers(model, config.trainable_layers)
        logger.info("freeze fine-tuning: %d parameter tensors train, e.g. %s", len(names), names[0])
    trainable, total = count_parameters(model)
    logger.info("parameters: %s trainable of %s (%.2f%%), precision %s", f"{trainable:,}", f"{total:,}",
                100 * trainable / total, precision)  # fmt: skip

    # ---- Train --------------------------------------------------------------------------------
    use_gpu = torch.cuda.is_available()
    args = TrainingArguments(
        **trainer_arguments(config, output_dir, precision, has_eval=len(dev_examples) > 0),
        include_num_input_tokens_seen="non_padding",
    )
    # Every process has checked output_dir above; only after all of them have (TrainingArguments set up
    # the process group) may rank 0 write into it, or a slower rank would find a "run" there and refuse.
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
    write_run_record(output_dir, resolved, "finetune_config.json", data_files, config.seed,
                     checkpoint=checkpoint, model_paths=[config.model_name_or_path])  # fmt: skip
    setup_wandb(config.report_to, config.wandb_project, config.run_name or output_dir.name)
    guard = TrainerRunGuard(output_dir, checkpoint)  # checkpoint manifests, SIGTERM/SIGINT stop, save errors
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_examples,
        eval_dataset=dev_examples if len(dev_examples) else None,
        data_collator=DataCollatorForSeq2Seq(tokenizer, pad_to_multiple_of=8 if use_gpu else None),
        processing_class=tokenizer,
        callbacks=[step_timer := step_timer_callback(), *guard.callbacks],
    )
    train_result = guard.train(trainer)  # SIGTERM/SIGINT: exits 143/130 here, after saving a checkpoint

    # ---- Save ---------------------------------------------------------------------------------
    trainer.save_model(str(output_dir))  # the adapter alone for LoRA; the full model otherwise
    trainer.save_state()
    metrics = dict(train_result.metrics)
    metrics |= guard.whole_run_metrics(trainer.state, metrics)  # loss and tokens over every resumed session
    tokens_before = 0  # tokens/s counts only this session's work, also after a resume
    if checkpoint:
        tokens_before = json.loads((checkpoint / "trainer_state.json").read_text())["num_input_tokens_seen"]
    tokens_this_session = trainer.state.num_input_tokens_seen - tokens_before
    metrics["train_tokens_per_second"] = tokens_this_session / max(metrics["train_runtime"], 1e-9)
    metrics |= step_timer.summary()
    if use_gpu:
        metrics["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(str(output_dir))
        from common.report import plot_loss
        from common.runs import log_config_to_wandb

        logger.info("loss curves saved to %s", plot_loss(output_dir))  # LLaMA-Factory's --plot_loss habit
        log_config_to_wandb(config.report_to, resolved)  # the Trainer itself logs only TrainingArguments

    # ---- Evaluate -----------------------------------------------------------------------------
    if len(dev_examples):
        eval_metrics = trainer.evaluate()
        eval_metrics["perplexity"] = math.exp(min(eval_metrics["eval_loss"], 50.0))
        trainer.log_metrics("eval", eval_metrics)
        trainer.save_metrics("eval", eval_metrics)
    if trainer.is_world_process_zero():
        print(f"Fine-tuned {'adapter' if config.use_lora else 'model'} and run record saved in {output_dir}")
    from common.runs import finish_distributed

    finish_distributed()
    return output_dir


if __name__ == "__main__":
    try:
        main()
    except (ConfigError, DataError, RunError, OSError) as err:
        sys.exit(f"error: {err}")
