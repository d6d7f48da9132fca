"""The settings every training stage shares, each declared once, in groups.

A stage's config is a dataclass composed of the groups it uses plus its own few keys, e.g.

    @dataclasses.dataclass
    class FinetuneConfig(RunSettings, LoraSettings, TrainSettings, DataSettings, ModelSettings):
        trainable_layers: int = config_field(0, "...")          # a key of SFT alone
        learning_rate: float = stage_default(2e-5)               # SFT starts from another default

JSON run configs and flags stay flat (`--lora_r 16`, `"learning_rate": 2e-5`), so BELLE's and
Chinese-LLaMA-Alpaca's configs keep working. Each group's `check` validates only its own fields, once, for
every stage (common.config.Settings.validate runs them all). Helpers take the group they need
(`lora: LoraSettings`), which the composed config is an instance of.

    ModelSettings   which weights, how they are loaded (attention kernel, 4/8-bit quantisation, liger,
                    RemoteCodeSettings' trust_remote_code)
    DataSourceSettings  which records, in which template (PPO's prompts)
    DataSettings        + cut-off and held-out split (SFT, RM, DPO)
    OptimSettings   optimiser and schedule, accumulation, checkpoint and log intervals (PPO's loop too)
    TrainSettings   + the Trainer's batches, evaluation, length grouping and packing
    LoraSettings    LoRA adapters (QLoRA when ModelSettings.quantization_bit is set)
    PrecisionSettings  auto, bf16, fp16 or fp32 (also generate.py and the servers)
    SamplingSettings   answer length and temperature of sampling (generate.py; PPO's and GRPO's rollouts)
    WandbSettings   W&B reporting (also evaluate.py, make_report.py)
    RunSettings     both + output folder, resume/overwrite, BELLE's fp16/bf16 switches, DeepSpeed/FSDP, seed
"""

from __future__ import annotations

import dataclasses
import os

from common.config import ConfigError, Settings, config_field, stage_default

ATTENTION_CHOICES = ("auto", "flex_attention", "sdpa", "eager", "flash_attention_2", "flash_attention_3")
QUANTIZATION_TYPES = ("nf4", "fp4")


def is_set(value: str | None) -> bool:
    """A string setting that is on: not null, empty or false (JSON configs write all of these)."""
    return value not in (None, "", "false", "False")


@dataclasses.dataclass
class RemoteCodeSettings(Settings):
    """Whether a model folder's own Python code may run: every script that loads a model or tokenizer has this
    key (the training stages through ModelSettings; generate, merge_lora and merge_tokenizer directly)."""

    trust_remote_code: bool = config_field(
        False,
        "allow a model folder that ships its own modeling/tokenizer code (Baichuan, ChatGLM, InternLM, Qwen v1, "
        "XVERSE) to run that Python code; read it first, it runs with your permissions",
    )


@dataclasses.dataclass
class ModelSettings(RemoteCodeSettings):
    model_name_or_path: str = config_field("models/tiny-llama", "local folder or hub name of the base model")
    model_type: str | None = config_field(
        None,
        "model family for the default LoRA targets (python -m common.families lists them); "
        "null: the weights' config.json decides",
    )
    attn_implementation: str = config_field(
        "auto",
        "attention kernel: auto (flash_attention_2/3 if installed, else flex_attention on GPU with packing, "
        "else sdpa), flex_attention, sdpa, eager, flash_attention_2, flash_attention_3",
    )
    quantization_bit: int | None = config_field(
        None, "load the frozen base in 4 or 8 bits with bitsandbytes (QLoRA; needs use_lora); null: off"
    )
    quantization_type: str = config_field("nf4", "4-bit data type: nf4 (QLoRA's) or fp4")
    double_quantization: bool = config_field(True, "also quantise the 4-bit scales (saves ~0.4 bit/weight)")
    use_liger_kernel: bool = config_field(
        False, "liger-kernel's fused RMSNorm, RoPE, SwiGLU and linear+cross-entropy (GPU, needs liger-kernel)"
    )

    def check(self) -> None:
        if self.attn_implementation not in ATTENTION_CHOICES:
            raise ConfigError(f"attn_implementation must be one of {', '.join(ATTENTION_CHOICES)}, "
                              f"got {self.attn_implementation!r}")  # fmt: skip
        if self.quantization_bit not in (None, 4, 8):
            raise ConfigError(f"quantization_bit must be 4, 8 or null, got {self.quantization_bit}")
        if self.quantization_type not in QUANTIZATION_TYPES:
            raise ConfigError(f"quantization_type must be nf4 or fp4, got {self.quantization_type!r}")
        if self.model_type is not None:
            from common.families import FAMILIES

            if self.model_type not in FAMILIES:
                raise ConfigError(f"unknown model_type {self.model_type!r}; known: {', '.join(FAMILIES)} "
                                  "(or null: read it from the weights)")  # fmt: skip


@dataclasses.dataclass
class AdapterStartSettings(Settings):
    adapter_name_or_path: str | None = config_field(
        None, "an SFT LoRA adapter on model_name_or_path to start from (see the script's docstring)"
    )


@dataclasses.dataclass
class RegistrySettings(Settings):
    """Where a stage's data comes from: the dataset registry (pre-training: also a plain folder of text)."""

    dataset: str | None = config_field(
        None,
        "registered dataset name(s), comma-separated, from dataset_dir/dataset_info.json (wins over data_path; "
        "pre-training with null: every text file in dataset_dir)",
    )
    dataset_dir: str = config_field(
        "data_dir",
        "folder holding dataset_info.json and its files (pre-training: or a folder of *.txt / JSON lines `text`)",
    )
    skip_bad_records: bool = config_field(
        False,
        "skip malformed records or lines (counted and logged) instead of stopping with a list of them",
    )


@dataclasses.dataclass
class DataSourceSettings(RegistrySettings):
    """Which records a stage reads and how it renders them (PPO's prompts too)."""

    data_path: str = config_field(
        "data_dir/sample_sft.train.json",
        "one data file (JSON lines or array): alpaca/BELLE, ShareGPT `conversations`, OpenAI `messages`, "
        "or preference pairs (chosen/rejected) for RM, DPO and PPO",
    )
    template: str = config_field(
        "belle", "prompt format: belle, alpaca, vicuna, llama2, llama3, mistral, chatml, ..., or tokenizer"
    )
    max_samples: int | None = config_field(None, "use at most N records of each dataset (null: all)")

    def check(self) -> None:
        check_template_and_max_samples(self.template, self.max_samples)


def check_template_and_max_samples(template: str, max_samples: int | None) -> None:
    """DataSourceSettings' check of these two keys, which generate.py also has (it reads a dev file, not
    data_path, so it declares them itself)."""
    from common.templates import TEMPLATE_NAMES

    if template not in TEMPLATE_NAMES:
        raise ConfigError(f"unknown template {template!r}; choose one of {', '.join(TEMPLATE_NAMES)}")
    if max_samples is not None and max_samples < 1:
        raise ConfigError(f"max_samples must be at least 1 (or null), got {max_samples}")


@dataclasses.dataclass
class DataSettings(DataSourceSettings):
    """Examples cut to a length and split into train / held out (SFT, RM, DPO)."""

    cutoff_len: int = config_field(
        512, "maximum tokens per example (prompt + response + eos); longer ones are cut"
    )
    val_set_size: int = config_field(
        1000, "examples held out for evaluation (capped by val_set_rate; 0 = none)"
    )
    val_set_rate: float = config_field(0.1, "largest share of the data that may be held out")

    def check(self) -> None:
        if self.cutoff_len < 2:
            raise ConfigError(f"cutoff_len must be at least 2, got {self.cutoff_len}")
        if not 0 <= self.val_set_rate <= 1:
            raise ConfigError(f"val_set_rate must be between 0 and 1, got {self.val_set_rate}")


@dataclasses.dataclass
class OptimSettings(Settings):
    """The optimiser and schedule: what PPO's own loop shares with the Trainer stages."""

    num_epochs: float = config_field(1.0, "passes over the training data")
    max_steps: int = config_field(-1, "stop after this many optimizer steps (-1: run num_epochs)")
    learning_rate: float = config_field(1e-5, "peak learning rate")
    lr_scheduler_type: str = config_field(
        "cosine", "transformers schedule name: linear, cosine, constant, ..."
    )
    warmup_steps: int = config_field(0, "linear warm-up steps")
    weight_decay: float = config_field(0.0, "AdamW weight decay")
    max_grad_norm: float = config_field(1.0, "clip the gradient norm to this")
    gradient_accumulation_steps: int | None = config_field(
        None, "micro-batches per optimizer step (null: batch_size / (per_device_train_batch_size x devices))"
    )
    gradient_checkpointing: bool = config_field(
        False,
        "recompute activations in the backward pass (non-reentrant): much less memory, ~30% more compute",
    )
    save_steps: int = config_field(1000, "save a checkpoint every N optimizer steps")
    save_total_limit: int | None = config_field(
        3, "keep at most this many checkpoints of this run (null: all)"
    )
    logging_steps: int = config_field(10, "log every N optimizer steps")

    def check(self) -> None:
        if self.learning_rate <= 0:
            raise ConfigError(f"learning_rate must be > 0, got {self.learning_rate}")
        for name in ("save_steps", "logging_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.save_total_limit is not None and self.save_total_limit < 1:
            raise ConfigError(f"save_total_limit must be at least 1 (or null), got {self.save_total_limit}")
        if self.gradient_accumulation_steps is not None and self.gradient_accumulation_steps < 1:
            raise ConfigError("gradient_accumulation_steps must be at least 1 (or null)")


@dataclasses.dataclass
class TrainSettings(OptimSettings):
    """Batches and evaluation of the Trainer-based stages (SFT, pre-training, RM, DPO)."""

    batch_size: int = config_field(
        32, "global batch size in examples; sets gradient_accumulation_steps when that is null"
    )
    per_device_train_batch_size: int = config_field(
        4, "examples (or packed rows) per device per forward pass"
    )
    per_device_eval_batch_size: int = config_field(4, "examples per device per evaluation pass")
    eval_steps: int = config_field(1000, "evaluate every N steps (when there is a held-out set)")
    group_by_length: bool = config_field(
        False, "batch examples of similar length together so padding is small (unpacked runs)"
    )
    packing: bool = config_field(
        False,
        "put several examples in each row of cutoff_len tokens; each attends only to itself (positions "
        "restart, attention masked per example), so every example's loss is the unpacked one",
    )

    torch_compile: bool = config_field(
        False,
        "SFT and pre-training: torch.compile each decoder block (the head and loss stay eager): faster steps "
        "and less activation memory; the first step pays for compiling (train_first_step_seconds). Wants "
        "repeating shapes: packing (rows padded to cutoff_len on a GPU) or examples of one length",
    )

    def check(self) -> None:
        for name in ("batch_size", "per_device_train_batch_size", "per_device_eval_batch_size", "eval_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.packing and self.group_by_length:
            raise ConfigError("packing and group_by_length both shape batches; packed rows have no padding "
                              "to save, so choose one")  # fmt: skip


@dataclasses.dataclass
class LoraSettings(Settings):
    use_lora: bool = config_field(False, "train a LoRA adapter instead of the full model")
    lora_r: int = config_field(8, "LoRA rank")
    lora_alpha: float = config_field(16, "LoRA scaling numerator (scale = alpha / r)")
    lora_dropout: float = config_field(0.05, "dropout on the LoRA input")
    lora_target_modules: list[str] | None = config_field(
        None, 'module names to adapt, or ["all"] (null: by model family, see model_type)'
    )

    def check(self) -> None:
        if self.lora_r < 1:
            raise ConfigError(f"lora_r must be at least 1, got {self.lora_r}")
        if not 0 <= self.lora_dropout < 1:
            raise ConfigError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if getattr(self, "quantization_bit", None) and not self.use_lora:
            raise ConfigError("quantization_bit trains a LoRA adapter on a frozen quantised base (QLoRA): "
                              "set use_lora true as well")  # fmt: skip


@dataclasses.dataclass
class PrecisionSettings(Settings):
    precision: str = config_field(
        "auto", "auto (bf16 on GPUs that have it, else fp16; fp32 on CPU), bf16, fp16 or fp32"
    )

    def check(self) -> None:
        if self.precision not in ("auto", "bf16", "fp16", "fp32"):
            raise ConfigError(f"precision must be auto, bf16, fp16 or fp32, got {self.precision!r}")


@dataclasses.dataclass
class WandbSettings(Settings):
    report_to: str = config_field("none", "none or wandb (offline when there is no API key)")
    wandb_project: str = config_field("belle-finetune", "W&B project name")
    run_name: str | None = config_field(None, "W&B run name (default: named after the output or run folder)")

    def check(self) -> None:
        if self.report_to not in ("none", "wandb"):
            raise ConfigError(f"report_to must be none or wandb, got {self.report_to!r}")


@dataclasses.dataclass
class RunSettings(WandbSettings, PrecisionSettings):
    output_dir: str = config_field(
        "trained_models/tiny-llama", "where checkpoints, the result and the run record go"
    )
    seed: int = config_field(42, "seed for the split, initialisation of new weights, and data order")
    fp16: bool | None = config_field(None, "BELLE compatibility: true forces precision fp16")
    bf16: bool | None = config_field(None, "BELLE compatibility: true forces precision bf16")
    deepspeed: str | None = config_field(
        None, "DeepSpeed JSON config (e.g. run_config/deepspeed_config.json)"
    )
    fsdp_config: str | None = config_field(
        None, "FSDP2 JSON config (run_config/fsdp2.json): torch's fully_shard through accelerate; launch with torchrun"
    )
    resume_from_checkpoint: str | None = config_field(
        None, "true: newest complete checkpoint of this run in output_dir; or a checkpoint folder"
    )
    overwrite_output_dir: bool = config_field(
        False,
        "start a new run in an output_dir that holds one; the earlier files are moved aside, never deleted",
    )
    local_rank: int = config_field(-1, "set by the deepspeed launcher; leave it alone")

    def check(self) -> None:
        if self.fp16 and self.bf16:
            raise ConfigError("fp16 and bf16 are both true; choose one")
        if self.deepspeed and self.fsdp_config:
            raise ConfigError("deepspeed and fsdp_config are two ways to shard the same training; choose one")
        if self.fsdp_config and "LOCAL_RANK" not in os.environ:
            # One process under torchrun is allowed: it resumes a sharded checkpoint on one GPU.
            raise ConfigError("fsdp_config shards the model over torchrun's processes: launch with "
                              "torchrun --nproc_per_node=N (one per GPU; N = 1 runs it on one GPU)")  # fmt: skip
        if self.deepspeed and getattr(self, "quantization_bit", None):
            raise ConfigError("quantization_bit (QLoRA) under DeepSpeed is not supported here: train QLoRA "
                              "with torchrun or on one GPU, or drop quantization_bit")  # fmt: skip

    def zero_stage(self) -> int:
        """The ZeRO stage of the `deepspeed` config (0 without one); an unreadable config is one error."""
        if not self.deepspeed:
            return 0
        import json
        from pathlib import Path

        try:
            return int(json.loads(Path(self.deepspeed).read_text()).get("zero_optimization", {}).get("stage", 0))
        except (OSError, ValueError, AttributeError) as err:
            raise ConfigError(f"cannot read the DeepSpeed config {self.deepspeed}: {err}") from None

    def resolved_precision(self) -> str:
        """bf16/fp16/fp32 for this machine: BELLE's fp16/bf16 flags win, then `precision`."""
        from common.modeling import pick_precision

        return pick_precision("bf16" if self.bf16 else "fp16" if self.fp16 else self.precision)


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


@dataclasses.dataclass
class SamplingSettings(Settings):
    """How long and how random a sampled answer is: generate.py's decoding and PPO's and GRPO's rollouts (their
    defaults are OnPolicySettings')."""

    max_new_tokens: int = config_field(
        256,
        "most tokens generated per answer; it stops earlier at eos or the template's end marker "
        "(PPO: an answer cut here gets missing_eos_penalty)",
    )
    temperature: float = config_field(
        0.7,
        "sampling temperature (generate.py: with decoding=sample; PPO and GRPO: of the rollouts, and in the loss)",
    )

    def check(self) -> None:
        if self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")


@dataclasses.dataclass
class OnPolicySettings(SamplingSettings):
    """Sampling and the clipped policy update of the stages that learn from their own samples (PPO, GRPO)."""

    max_new_tokens: int = stage_default(128)
    temperature: float = stage_default(1.0)  # the rollouts sample the policy as it is
    reward_model: str | None = config_field(
        None, "reward model folder written by scripts/train_rm.py (GRPO: used by the reward_model reward)"
    )
    max_prompt_len: int = config_field(256, "prompts longer than this many tokens are left out (counted)")
    kl_coef: float = config_field(
        0.05, "weight of the per-token KL penalty against the reference policy (GRPO: 0 holds no reference)"
    )
    cliprange: float = config_field(0.2, "clip range of the policy ratio")

    def check(self) -> None:
        if self.max_prompt_len < 1:
            raise ConfigError(f"max_prompt_len must be at least 1, got {self.max_prompt_len}")
        # Stricter than generate.py (which never divides by it): the loss divides the logits by temperature.
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")
        if self.kl_coef < 0 or self.cliprange <= 0:
            raise ConfigError("kl_coef must be >= 0 and cliprange > 0")


@dataclasses.dataclass
class PreferenceLossSettings(Settings):
    """The scale of a preference loss (DPO and its reference-free variants, KTO)."""

    beta: float = config_field(
        0.1,
        "DPO (sigmoid/ipo/hinge) and KTO: strength of the tie to the reference policy (larger: closer to it); "
        "orpo: weight lambda of the odds-ratio term; simpo: scale of the length-averaged log-probability margin",
    )

    def check(self) -> None:
        if self.beta <= 0:
            raise ConfigError(f"beta must be > 0, got {self.beta}")

