"""What the preference stages (train_rm.py, train_dpo.py, train_ppo.py) share: the settings every such run
has, the resume rule, and the TrainingArguments built from them.

The settings come in groups (model and data, LoRA, run management) that a stage's config dataclass
inherits; RM and DPO take them all through `PreferenceTrainingConfig` and add their few keys (DPO's beta),
PPO takes the groups it uses and its own batch keys. `--help`, run configs and the resolved config list
one flat set of keys.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

from common.config import ConfigError, config_field
from common.runs import prepare_run_dir, resolve_checkpoint  # noqa: F401  (moved to runs; PPO imports them here)

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class ModelDataSettings:
    # Model
    model_name_or_path: str = config_field(
        "models/tiny-llama",
        "the SFT model (a full fine-tune or merged LoRA), or the base under adapter_name_or_path",
    )
    adapter_name_or_path: str | None = config_field(
        None, "an SFT LoRA adapter on model_name_or_path to start from (see the script's docstring)"
    )
    template: str = config_field("belle", "prompt format, the same one SFT used (belle, chatml, llama3, ...)")
    # Data
    dataset: str | None = config_field(
        None, "registered preference dataset name(s), comma-separated (wins over data_path)"
    )
    data_path: str = config_field(
        "data_dir/sample_preference.json", "one preference file (prompt + chosen/rejected, or HH-RLHF text)"
    )
    dataset_dir: str = config_field("data_dir", "folder holding dataset_info.json and its files")
    max_samples: int | None = config_field(None, "use at most N pairs of each dataset (null: all)")
    skip_bad_records: bool = config_field(False, "skip malformed records (counted) instead of stopping")


@dataclasses.dataclass
class PairTrainingSettings:
    cutoff_len: int = config_field(512, "maximum tokens of prompt + the longer answer; longer pairs are cut")
    val_set_size: int = config_field(1000, "pairs held out for evaluation (capped by val_set_rate; 0 = none)")
    val_set_rate: float = config_field(0.1, "largest share of the pairs that may be held out")
    batch_size: int = config_field(
        16, "global batch size in pairs; sets gradient_accumulation_steps when null"
    )
    per_device_train_batch_size: int = config_field(4, "pairs per device per forward pass")
    per_device_eval_batch_size: int = config_field(4, "pairs per device per evaluation pass")
    gradient_accumulation_steps: int | None = config_field(
        None, "micro-batches per step (null: from batch_size)"
    )
    num_epochs: float = config_field(1.0, "passes over the training pairs")
    max_steps: int = config_field(-1, "stop after this many optimizer steps (-1: run num_epochs)")
    learning_rate: float = config_field(1e-5, "peak learning rate")
    lr_scheduler_type: str = config_field(
        "cosine", "transformers schedule name: linear, cosine, constant, ..."
    )
    warmup_steps: int = config_field(0, "linear warm-up steps")
    weight_decay: float = config_field(0.0, "AdamW weight decay")
    gradient_checkpointing: bool = config_field(False, "recompute activations to save memory")
    logging_steps: int = config_field(10, "log every N steps")
    save_steps: int = config_field(500, "save a checkpoint every N steps")
    eval_steps: int = config_field(500, "evaluate every N steps (when there is a held-out set)")
    save_total_limit: int | None = config_field(3, "keep at most this many checkpoints (null: all)")


@dataclasses.dataclass
class LoraSettings:
    use_lora: bool = config_field(False, "train a LoRA adapter instead of the full model")
    lora_r: int = config_field(8, "LoRA rank")
    lora_alpha: int = config_field(16, "LoRA scaling numerator (scale = alpha / r)")
    lora_dropout: float = config_field(0.05, "dropout on the LoRA input")
    lora_target_modules: list[str] | None = config_field(
        None, 'module names to adapt, or ["all"] (null: by model family)'
    )


@dataclasses.dataclass
class RunSettings:
    output_dir: str = config_field("trained_models/tiny-llama-rlhf", "where checkpoints and the result go")
    seed: int = config_field(42, "seed for the split, new weights (LoRA, value/score heads) and data order")
    precision: str = config_field(
        "auto", "auto (bf16 on GPUs that have it, else fp16; fp32 on CPU), bf16, fp16 or fp32"
    )
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
    wandb_project: str = config_field("belle-rlhf", "W&B project name")
    run_name: str | None = config_field(None, "W&B run name (default: the output folder's name)")
    local_rank: int = config_field(-1, "set by the deepspeed launcher; leave it alone")


@dataclasses.dataclass
class PreferenceTrainingConfig(RunSettings, PairTrainingSettings, LoraSettings, ModelDataSettings):
    """Every key of a Trainer-based preference stage (reward modelling, DPO)."""

    def validate(self) -> None:
        validate_shared(self)
        if self.cutoff_len < 2:
            raise ConfigError(f"cutoff_len must be at least 2, got {self.cutoff_len}")


def validate_shared(config: Any) -> None:
    """Checks of the keys every stage has (model and data, run settings)."""
    if config.precision not in ("auto", "bf16", "fp16", "fp32"):
        raise ConfigError(f"precision must be auto, bf16, fp16 or fp32, got {config.precision!r}")
    if config.report_to not in ("none", "wandb"):
        raise ConfigError(f"report_to must be none or wandb, got {config.report_to!r}")
    if config.max_samples is not None and config.max_samples < 1:
        raise ConfigError(f"max_samples must be at least 1 (or null), got {config.max_samples}")
    from common.templates import TEMPLATE_NAMES

    if config.template not in TEMPLATE_NAMES:
        raise ConfigError(f"unknown template {config.template!r}; choose one of {', '.join(TEMPLATE_NAMES)}")


def load_stage_tokenizer(config: Any, padding_side: str = "right") -> Any:
    """The tokenizer saved with the SFT adapter when the run starts from one, else the model's."""
    from common.modeling import adapter_tokenizer_path, load_tokenizer

    path = config.model_name_or_path
    if config.adapter_name_or_path:
        path = adapter_tokenizer_path(config.adapter_name_or_path, config.model_name_or_path)
    return load_tokenizer(path, padding_side=padding_side)


def load_preference_pairs(config: Any, tokenizer: Any, stage: str) -> tuple[Any, Any, list[str]]:
    """(train, held-out) datasets of prompt_ids / chosen_ids / rejected_ids rendered with the run's
    template, and the data files read (for the run manifest)."""
    from common.data import DataError, load_mixed, resolve_specs, spec_files, tokenise_preferences

    specs = resolve_specs(config.dataset, config.data_path, config.dataset_dir)
    records = load_mixed(specs, config.dataset_dir, config.skip_bad_records, config.max_samples, config.seed)
    if "chosen" not in records[0]:
        raise DataError(f"dataset {records[0]['_source']!r} has no chosen/rejected answers; {stage} needs "
                        "preference pairs (instruction data goes to finetune.py)")  # fmt: skip
    pairs = tokenise_preferences(records, tokenizer, config.template, config.cutoff_len)
    train, dev = split_pairs(pairs, config)
    logger.info("%s pairs: %d train, %d held out (template %s)", stage, len(train), len(dev), config.template)
    return train, dev, spec_files(specs, config.dataset_dir)


def gradient_accumulation(config: Any) -> int:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    return config.gradient_accumulation_steps or max(
        1, config.batch_size // (config.per_device_train_batch_size * world_size)
    )


def trainer_arguments(config: Any, output_dir: Path, precision: str, has_eval: bool) -> dict[str, Any]:
    """Keyword arguments for TrainingArguments (or TRL's RewardConfig / DPOConfig, its subclasses)."""
    import torch
    from transformers import TrainingArguments

    use_gpu = torch.cuda.is_available()
    # transformers 5.2x renamed gradient_checkpointing to activation_checkpointing; the GPU image is older.
    renamed = "activation_checkpointing" in {f.name for f in dataclasses.fields(TrainingArguments)}
    name = "activation_checkpointing" if renamed else "gradient_checkpointing"
    checkpointing: dict[str, Any] = {name: config.gradient_checkpointing}
    if config.gradient_checkpointing:
        checkpointing[f"{name}_kwargs"] = {"use_reentrant": False}
    return dict(
        **checkpointing,
        output_dir=str(output_dir),
        per_device_train_batch_size=config.per_device_train_batch_size,
        per_device_eval_batch_size=config.per_device_eval_batch_size,
        gradient_accumulation_steps=gradient_accumulation(config),
        num_train_epochs=config.num_epochs,
        max_steps=config.max_steps,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler_type,
        warmup_steps=config.warmup_steps,
        weight_decay=config.weight_decay,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=not use_gpu,
        logging_steps=config.logging_steps,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=config.eval_steps,
        seed=config.seed,
        data_seed=config.seed,
        deepspeed=config.deepspeed,
        report_to=[] if config.report_to == "none" else [config.report_to],
        run_name=config.run_name or output_dir.name,
        ddp_find_unused_parameters=False,
        dataloader_pin_memory=use_gpu,
    )


def lora_config(config: Any, model: Any, task_type: str, modules_to_save: list[str] | None = None) -> Any:
    """A peft LoraConfig from the run config, with targets chosen by model family when not given."""
    from peft import LoraConfig

    from common.families import lora_target_modules

    try:
        targets = lora_target_modules(model, config.lora_target_modules)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=targets,
        modules_to_save=modules_to_save,
        task_type=task_type,
    )


def split_pairs(pairs: Any, config: Any) -> tuple[Any, Any]:
    """(train, held-out) datasets of tokenised pairs, the held-out part seeded and capped as in SFT."""
    from common.data import split_train_dev

    dev_size = min(config.val_set_size, int(len(pairs) * config.val_set_rate))
    train_index, dev_index = split_train_dev(list(range(len(pairs))), dev_size, config.seed)
    return pairs.select(train_index), pairs.select(dev_index)
