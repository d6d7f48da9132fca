"""What the training stages share beyond their settings (common/settings.py): the TrainingArguments and
PEFT configs built from the setting groups, the adapter-aware tokenizer, and the preference pairs that RM
and DPO (and PPO's prompts) read.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from common.config import ConfigError, Settings, stage_default
from common.settings import (
    AdapterStartSettings,
    DataSettings,
    LoraSettings,
    ModelSettings,
    PreferenceLossSettings,
    RunSettings,
    TrainSettings,
    world_size,
)

logger = logging.getLogger(__name__)


def same_named(group: type[Settings], *names: str) -> tuple[str, ...]:
    """Settings of `group` that a transformers/TRL config takes under the same name. A name the group lacks (a
    renamed setting) fails here, at import, not after the model has loaded."""
    unknown = set(names) - {field.name for field in dataclasses.fields(group)}
    if unknown:
        raise TypeError(f"{group.__name__} has no setting {', '.join(sorted(unknown))}")
    return names


def same_named_arguments(settings: Settings, names: tuple[str, ...]) -> dict[str, Any]:
    """Those settings as keyword arguments, each name said once instead of `name=settings.name`."""
    return {name: getattr(settings, name) for name in names}


# TrainingArguments' keywords that are our settings by the same name; trainer_arguments spells out the others
# (renamed, resolved on this machine, or fixed).
TRAINER_SAME_NAMED = same_named(
    TrainSettings,
    "per_device_train_batch_size", "per_device_eval_batch_size", "max_steps", "learning_rate",
    "lr_scheduler_type", "warmup_steps", "weight_decay", "max_grad_norm", "logging_steps", "save_steps",
    "save_total_limit", "eval_steps",
)  # fmt: skip


@dataclasses.dataclass
class PreferenceTrainingConfig(
    RunSettings, LoraSettings, TrainSettings, DataSettings, AdapterStartSettings, ModelSettings
):
    """Every key of a Trainer-based preference stage (reward modelling, DPO)."""

    data_path: str = stage_default("data_dir/sample_preference.json")
    batch_size: int = stage_default(16)
    save_steps: int = stage_default(500)
    eval_steps: int = stage_default(500)
    output_dir: str = stage_default("trained_models/tiny-llama-rlhf")
    wandb_project: str = stage_default("belle-rlhf")

    def check(self) -> None:
        if self.packing:
            # TRL 1.16 turns DPOConfig.padding_free off with a warning ("temporarily unavailable after a
            # refactor") and RewardTrainer has no padding-free path, so a packed pair batch would be silently
            # padded after all.
            raise ConfigError("packing is for SFT and pre-training: TRL 1.16 has disabled DPO's padding-free "
                              "batches and has none for reward models, so pairs are padded per batch")  # fmt: skip
        if self.torch_compile or self.use_liger_kernel:
            raise ConfigError("torch_compile and use_liger_kernel are for SFT and pre-training: pair batches "
                              "change shape every step, and TRL's pair losses read full logits")  # fmt: skip
        if self.group_by_length:
            # The Trainer's length-grouped sampler measures `input_ids`; TRL's pair datasets have none and
            # drop any other column before the sampler is built.
            raise ConfigError("group_by_length is for SFT: the Trainer's length-grouped sampler cannot measure "
                              "TRL's preference pairs")  # fmt: skip


@dataclasses.dataclass
class PolicyPreferenceConfig(PreferenceLossSettings, PreferenceTrainingConfig):
    """Every key of a stage that trains the policy itself on preferences (DPO and its variants, KTO)."""

    learning_rate: float = stage_default(5e-6)  # small: full fine-tuning of a policy drifts fast on preferences

    def check(self) -> None:
        # Seen on two H200s (torch 2.11, accelerate 1.15, TRL 1.16; tests/gpu/fsdp2_checks.py): accelerate shards the
        # final norm and lm_head as one FSDP2 group; TRL's fused log-prob forward runs the norm but only reads
        # lm_head.weight, so torch 2.11 leaves that group "in forward" after an evaluation, a state-dict save
        # reshards it behind its back, and the next forward meets sharded weights ("mixed torch.Tensor and
        # DTensor"). torch 2.13 completes such groups itself (_fsdp_state.py, _force_complete_incomplete_states).
        # LoRA and the reference-free losses do not put the norm in that group.
        if self.fsdp_config and not self.use_lora and not getattr(self, "reference_free", False):
            from importlib.metadata import version

            torch_version = version("torch")
            if tuple(int(part) for part in torch_version.split("+")[0].split(".")[:2]) < (2, 13):
                raise ConfigError(f"full-parameter DPO/KTO under FSDP2 needs torch >= 2.13 (this is {torch_version}): "
                                  "with TRL's fused log-prob head, torch 2.11 left the final norm's FSDP2 group "
                                  "half-run after an evaluation and the next forward failed on sharded weights. "
                                  "Upgrade torch (the pinned 2.13.0), or use DeepSpeed ZeRO-3 "
                                  "(run_config/deepspeed_zero3.json) or LoRA (use_lora)")  # fmt: skip


def sharded_sampling_refusal(stage: str, sharding: str) -> str:
    """Why the stages that sample their own training data (PPO, GRPO) refuse ZeRO-3 and FSDP2, in one line."""
    return (f"{sharding} is refused for {stage}: its rollouts sample token by token with generate(), and under "
            f"{sharding} each decoding step would all-gather every layer's weight shards again (max_new_tokens "
            "gathers of the whole model per rollout), or the whole model would be gathered onto each GPU for the "
            f"rollout, the memory {sharding} exists to save. Use ZeRO-2 (run_config/deepspeed_config.json), or "
            "LoRA/QLoRA under torchrun")  # fmt: skip


def resolved_settings(config: Any, precision: str, **more: Any) -> dict[str, Any]:
    """The run's settings as written to its record: every key, the files they came from, and what was resolved
    on this machine (precision, processes, accumulation) plus what the stage adds later (`more`)."""
    from common.config import config_to_dict

    resolved = {"precision": precision, "world_size": world_size()}
    if isinstance(config, TrainSettings):
        resolved["gradient_accumulation_steps"] = gradient_accumulation(config)
    return config_to_dict(config) | {"_resolved": resolved | more}


def load_stage_tokenizer(model: ModelSettings, adapter_path: str | None, padding_side: str = "right") -> Any:
    """The tokenizer saved with the SFT adapter when the run starts from one, else the model's."""
    from common.modeling import adapter_tokenizer_path, load_tokenizer

    path = model.model_name_or_path
    path = adapter_tokenizer_path(adapter_path, path) if adapter_path else path
    return load_tokenizer(path, padding_side=padding_side, trust_remote_code=model.trust_remote_code)


def load_preference_pairs(
    data: DataSettings, seed: int, tokenizer: Any, stage: str
) -> tuple[Any, Any, list[str]]:
    """(train, held-out) datasets of prompt_ids / chosen_ids / rejected_ids rendered with the run's
    template, and the data files read (for the run manifest)."""
    from common.data import DataError, load_mixed, resolve_specs, spec_files, tokenise_preferences

    specs = resolve_specs(data.dataset, data.data_path, data.dataset_dir)
    records = load_mixed(specs, data.dataset_dir, data.skip_bad_records, data.max_samples, seed)
    if "chosen" not in records[0]:
        raise DataError(f"dataset {records[0]['_source']!r} has no chosen/rejected answers; {stage} needs "
                        "preference pairs (instruction data goes to finetune.py)")  # fmt: skip
    pairs = tokenise_preferences(records, tokenizer, data.template, data.cutoff_len)
    train, dev = split_pairs(pairs, data, seed)
    logger.info("%s pairs: %d train, %d held out (template %s)", stage, len(train), len(dev), data.template)
    return train, dev, spec_files(specs, data.dataset_dir)


def gradient_accumulation(train: TrainSettings) -> int:
    return train.gradient_accumulation_steps or max(
        1, train.batch_size // (train.per_device_train_batch_size * world_size())
    )


def trainer_arguments(
    train: TrainSettings, run: RunSettings, output_dir: Path, precision: str, has_eval: bool
) -> dict[str, Any]:
    """Keyword arguments for TrainingArguments (or TRL's RewardConfig / DPOConfig, its subclasses)."""
    import torch
    from transformers import TrainingArguments

    use_gpu = torch.cuda.is_available()
    # transformers 5.2x renamed gradient_checkpointing to activation_checkpointing; the GPU image is older.
    renamed = "activation_checkpointing" in {f.name for f in dataclasses.fields(TrainingArguments)}
    name = "activation_checkpointing" if renamed else "gradient_checkpointing"
    checkpointing: dict[str, Any] = {name: train.gradient_checkpointing}
    # transformers 5.2x turned group_by_length into a sampling strategy.
    if "train_sampling_strategy" in {f.name for f in dataclasses.fields(TrainingArguments)}:
        length_grouping = {
            "train_sampling_strategy": "group_by_length" if train.group_by_length else "random"
        }
    else:
        length_grouping = {"group_by_length": train.group_by_length}
    if train.gradient_checkpointing:
        # Non-reentrant: works with LoRA/QLoRA (frozen inputs) and never needs enable_input_require_grads.
        checkpointing[f"{name}_kwargs"] = {"use_reentrant": False}
    return dict(
        **checkpointing,
        **same_named_arguments(train, TRAINER_SAME_NAMED),
        output_dir=str(output_dir),
        gradient_accumulation_steps=gradient_accumulation(train),
        num_train_epochs=train.num_epochs,
        **length_grouping,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=not use_gpu,
        save_strategy="steps",
        eval_strategy="steps" if has_eval else "no",
        seed=run.seed,
        data_seed=run.seed,
        deepspeed=run.deepspeed,
        fsdp=True if run.fsdp_config else None,
        fsdp_config=run.fsdp_config,
        report_to=[] if run.report_to == "none" else [run.report_to],
        run_name=run.run_name or output_dir.name,
        ddp_find_unused_parameters=False,
        dataloader_pin_memory=use_gpu,
    )


def liger_arguments(use_liger_kernel: bool, torch_compile: bool) -> dict[str, Any]:
    """TrainingArguments for liger-kernel: all its kernels, or under torch_compile its fused linear
    cross-entropy alone (inductor fuses RMSNorm, RoPE and SwiGLU itself; the loss runs outside the compiled
    blocks, and dynamo cannot trace it)."""
    if not use_liger_kernel:
        return {"use_liger_kernel": False}
    only_loss = {"rms_norm": False, "rope": False, "swiglu": False, "fused_linear_cross_entropy": True}
    return {"use_liger_kernel": True, "liger_kernel_config": only_loss if torch_compile else None}


def lora_config(
    lora: LoraSettings,
    model: Any,
    task_type: str,
    model_type: str | None = None,
    modules_to_save: list[str] | None = None,
) -> Any:
    """A peft LoraConfig from the LoRA settings, with targets chosen by model family when not given."""
    from peft import LoraConfig

    from common.families import lora_target_modules

    try:
        targets = lora_target_modules(model, lora.lora_target_modules, model_type)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    return LoraConfig(
        r=lora.lora_r,
        lora_alpha=lora.lora_alpha,
        lora_dropout=lora.lora_dropout,
        target_modules=targets,
        modules_to_save=modules_to_save,
        task_type=task_type,
    )


def causal_lm_trainer_class() -> Any:
    """The Trainer for SFT and pre-training: as transformers', except that a packed batch reaches the model
    without its attention_mask, so the model masks attention per example from position_ids (common/packing.py).
    The collator still sends the mask so that the Trainer counts real, not padding, tokens."""
    from transformers import Trainer

    from common.packing import strip_packed_attention_mask

    class CausalLMTrainer(Trainer):
        last_block_number = 0  # streamed pre-training: the highest block number training has consumed

        def compute_loss(self, model, inputs, *args, **kwargs):
            numbers = inputs.pop("block_number", None)  # scripts/pretrain.py --streaming numbers its blocks
            if numbers is not None:
                self.last_block_number = max(self.last_block_number, int(numbers.max()))
            return super().compute_loss(model, strip_packed_attention_mask(inputs), *args, **kwargs)

    return CausalLMTrainer


def split_pairs(pairs: Any, data: DataSettings, seed: int) -> tuple[Any, Any]:
    """(train, held-out) datasets of tokenised pairs, the held-out part seeded and capped as in SFT."""
    from common.data import split_train_dev

    dev_size = min(data.val_set_size, int(len(pairs) * data.val_set_rate))
    train_index, dev_index = split_train_dev(list(range(len(pairs))), dev_size, seed)
    return pairs.select(train_index), pairs.select(dev_index)


def train_and_save(trainer: Any, guard: Any, output_dir: Path, precision: str, reference: str = "") -> Any:
    """The middle of each TRL stage (DPO/ORPO/SimPO, KTO, GRPO): log what trains, train under the run guard
    (SIGTERM/SIGINT exit 143/130 there, after saving a checkpoint), then save the policy, the trainer state and
    the whole-run metrics. `reference` is said in the log line. Returns the Trainer's train result."""
    import shutil

    from common.modeling import count_parameters

    trainable, total = count_parameters(trainer.model)
    logger.info("trainable parameters: %s of %s (%.2f%%), precision %s%s", f"{trainable:,}", f"{total:,}",
                100 * trainable / total, precision, f"; reference: {reference}" if reference else "")  # fmt: skip
    train_result = guard.train(trainer)
    trainer.save_model(str(output_dir))
    if trainer.is_world_process_zero() and "ref" in getattr(trainer.model, "peft_config", {}):
        # PEFT saves every adapter it holds; TRL's frozen "ref" copy is only the starting SFT adapter
        # (adapter_name_or_path), and beside the policy it would read as a second result.
        shutil.rmtree(output_dir / "ref", ignore_errors=True)
    trainer.save_state()
    guard.record_train_metrics(trainer, train_result)  # loss and tokens over every resumed session
    return train_result


def save_tokenizer_and_curves(trainer: Any, tokenizer: Any, output_dir: Path, report_to: str,
                              resolved: dict[str, Any]) -> None:  # fmt: skip
    """The main process's part of the run record: the tokenizer beside the weights, the loss curves
    (LLaMA-Factory users' plot_loss habit) and the resolved settings to W&B (the Trainer logs only its own
    TrainingArguments there)."""
    if not trainer.is_world_process_zero():
        return
    from common.report import plot_loss
    from common.runs import log_config_to_wandb

    tokenizer.save_pretrained(str(output_dir))
    logger.info("loss curves saved to %s", plot_loss(output_dir))
    log_config_to_wandb(report_to, resolved)
