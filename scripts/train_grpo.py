"""Group relative policy optimisation (GRPO) of an SFT policy against rule rewards and/or our reward model,
with TRL's GRPOTrainer.

    python scripts/train_grpo.py --model_config_file run_config/tiny/grpo_config.json
    torchrun --nproc_per_node=8 scripts/train_grpo.py --model_config_file run_config/grpo_config.json
    deepspeed --num_gpus=8 scripts/train_grpo.py --model_config_file run_config/grpo_config.json \\
        --deepspeed run_config/deepspeed_config.json    # ZeRO-2 (ZeRO-3 is refused: sampling would re-gather it)

Each optimizer step (`batch_size` counts completions, so it takes batch_size / num_generations prompts):
  1. rollout: every prompt is answered `num_generations` times by sampling at `temperature` with the generation
     engine of generate.py, the API and PPO (common/generation.py); a completion ends at eos or at the
     template's end marker, or is cut at max_new_tokens;
  2. score: each function named in `reward_funcs` scores each completion; the reward is their sum weighted by
     `reward_weights` (rules from common/rewards.py: exact_answer, answer_format, length_penalty; and
     `reward_model`, the model of scripts/train_rm.py at `reward_model`, which reads prompt + completion
     ids as it was trained: right-padded, its score at the last token);
  3. advantages: within each prompt's group, (reward - group mean) / (group std + 1e-4), the std Bessel-corrected
     (scale_rewards group; batch: the batch's std; none: not divided) (common/rlhf.py: group_advantages);
  4. update: `num_iterations` passes of the clipped policy-gradient loss on each completion token, the ratio to
     the sampling policy clipped to [1 - cliprange, 1 + cliprange] (it is 1 in the first pass), tokens averaged
     over the accumulated batch (loss_type dapo; grpo: per completion first), plus kl_coef times a per-token
     KL estimate to the reference when kl_coef > 0.

Prompts come from any SFT data (alpaca/BELLE, ShareGPT, OpenAI messages) or math-style {"prompt", "answer"}
records (data_dir/sample_math.json, registered as sample_math): the prompt is every turn before the last answer, rendered with the SFT
template (common/templates.py: encode_generation_prompt), so GRPO samples in the format SFT taught; the last
answer (or `answer`) is what exact_answer compares with. Prompts over max_prompt_len tokens are left out.

The reference (only held when kl_coef > 0) is the starting policy: the model with the LoRA adapter disabled
(a new adapter), a frozen copy of the SFT adapter (`adapter_name_or_path` with LoRA), or a second copy of the
model (full fine-tuning; an SFT adapter must then be merged first, with scripts/merge_lora.py).

Logged every logging_steps, to the console, W&B and grpo_log.jsonl: the mean reward of each function
(rewards/<name>/mean), the total reward and its std, KL (when kl_coef > 0), completion lengths and the share
cut at max_new_tokens, clip ratios. grpo_rollouts.jsonl keeps every rollout's completions, per-function rewards
and advantages (the main process's share, under several processes). The output folder gets the policy (adapter or full model; generate.py and merge_lora.py read
it), the tokenizer, grpo_config.json, run_manifest.json and trainer_state.json; checkpoints (every
save_steps) resume with --resume_from_checkpoint true, equal to an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a file: find `common`

from common.config import ConfigError, Settings, config_field, stage_default  # noqa: E402
from common.modeling import load_training_model  # noqa: E402
from common.rewards import DEFAULT_ANSWER_PATTERN  # noqa: E402
from common.runs import log_config_to_wandb, open_run, run_as_script, start_trainer_run  # noqa: E402
from common.settings import (  # noqa: E402
    AdapterStartSettings,
    DataSourceSettings,
    LoraSettings,
    ModelSettings,
    OnPolicySettings,
    RunSettings,
    TrainSettings,
)
from common.templates import get_template, stop_token_ids  # noqa: E402
from common.training import (  # noqa: E402
    load_stage_tokenizer,
    lora_config,
    same_named,
    same_named_arguments,
    sharded_sampling_refusal,
    train_and_save,
    trainer_arguments,
)

logger = logging.getLogger("train_grpo")
GRPO_LOSS_TYPES = ("dapo", "grpo", "dr_grpo", "bnpo")
SCALE_REWARDS = ("group", "batch", "none")


@dataclasses.dataclass
class GRPOSettings(Settings):
    reward_funcs: list[str] = config_field(
        ["exact_answer", "answer_format"],
        "rewards summed per completion: rules of common/rewards.py (exact_answer, answer_format, "
        "length_penalty) and reward_model (the model in the reward_model folder)",
    )
    reward_weights: list[float] | None = config_field(None, "one weight per reward_funcs entry (null: all 1)")
    answer_pattern: str = config_field(
        DEFAULT_ANSWER_PATTERN,
        "regular expression of the required answer layout (answer_format); its group 1 is the answer "
        "exact_answer compares",
    )
    num_generations: int = config_field(8, "completions sampled per prompt (a group)")
    num_iterations: int = config_field(1, "update passes over each batch of rollouts")
    scale_rewards: str = config_field(
        "group", "divide advantages by the group's reward std (group), the batch's (batch), or not (none)"
    )
    loss_type: str = config_field(
        "dapo",
        "token averaging: dapo (over the accumulated batch), grpo (per completion, then over completions), "
        "dr_grpo (by max_new_tokens), bnpo (over the local batch)",
    )

    def check(self) -> None:
        from common.rewards import RULES

        known = [*RULES, "reward_model"]
        unknown = [name for name in self.reward_funcs if name not in known]
        if not self.reward_funcs or unknown:
            raise ConfigError(
                f"reward_funcs: unknown {unknown or 'empty list'}; choose from {', '.join(known)}"
            )
        if len(set(self.reward_funcs)) != len(self.reward_funcs):
            raise ConfigError(f"reward_funcs names a reward twice: {self.reward_funcs}")
        if self.reward_weights is not None:
            try:  # common.config reads every list as strings
                self.reward_weights = [float(weight) for weight in self.reward_weights]
            except ValueError:
                raise ConfigError(f"reward_weights must be numbers, got {self.reward_weights}") from None
        if self.reward_weights is not None and len(self.reward_weights) != len(self.reward_funcs):
            raise ConfigError(f"reward_weights has {len(self.reward_weights)} entries for "
                              f"{len(self.reward_funcs)} reward_funcs")  # fmt: skip
        if ("reward_model" in self.reward_funcs) != bool(self.reward_model):
            raise ConfigError(
                "reward_model in reward_funcs and the reward_model folder go together: name both or neither"
            )
        if self.num_generations < 2:
            raise ConfigError(
                "num_generations must be at least 2 (advantages compare answers within a group)"
            )
        if self.scale_rewards not in SCALE_REWARDS:
            raise ConfigError(
                f"scale_rewards must be one of {', '.join(SCALE_REWARDS)}, got {self.scale_rewards!r}"
            )
        if self.loss_type not in GRPO_LOSS_TYPES:
            raise ConfigError(
                f"loss_type must be one of {', '.join(GRPO_LOSS_TYPES)}, got {self.loss_type!r}"
            )
        try:
            import re

            re.compile(self.answer_pattern)
        except re.error as err:
            raise ConfigError(f"answer_pattern is not a regular expression: {err}") from None


@dataclasses.dataclass
class GRPOStageConfig(
    GRPOSettings,
    OnPolicySettings,
    RunSettings,
    LoraSettings,
    TrainSettings,
    DataSourceSettings,
    AdapterStartSettings,
    ModelSettings,
):
    kl_coef: float = stage_default(0.0)  # TRL's default: no reference model is held
    data_path: str = stage_default("data_dir/sample_math.json")
    batch_size: int = stage_default(16)
    per_device_train_batch_size: int = stage_default(8)
    learning_rate: float = stage_default(1e-6)
    lr_scheduler_type: str = stage_default("constant")
    save_steps: int = stage_default(100)
    logging_steps: int = stage_default(1)
    output_dir: str = stage_default("trained_models/tiny-llama-grpo")
    wandb_project: str = stage_default("belle-rlhf")

    def check(self) -> None:
        if self.packing or self.group_by_length:
            raise ConfigError("packing and group_by_length shape SFT batches; GRPO batches prompt groups")
        if (
            self.per_device_train_batch_size % self.num_generations
            and self.num_generations % self.per_device_train_batch_size
        ):
            raise ConfigError(f"per_device_train_batch_size ({self.per_device_train_batch_size}) and num_generations "
                              f"({self.num_generations}): one must divide the other")  # fmt: skip
        if self.batch_size % self.num_generations:
            raise ConfigError(f"batch_size ({self.batch_size}, completions per step) must be a multiple of "
                              f"num_generations ({self.num_generations})")  # fmt: skip
        if self.kl_coef > 0 and self.adapter_name_or_path and not self.use_lora:
            raise ConfigError("full fine-tuning with kl_coef > 0 loads its reference from model_name_or_path, which "
                              "lacks adapter_name_or_path: merge the adapter first (scripts/merge_lora.py)")  # fmt: skip
        if self.quantization_bit and self.adapter_name_or_path:
            raise ConfigError("quantization_bit with adapter_name_or_path: merge the SFT adapter first "
                              "(scripts/merge_lora.py), then train a new QLoRA adapter on the merged model")  # fmt: skip
        if self.zero_stage() == 3 or self.fsdp_config:
            raise ConfigError(sharded_sampling_refusal("GRPO", "FSDP2" if self.fsdp_config else "ZeRO-3"))


# GRPOConfig's keywords that are our settings by the same name (as TRAINER_SAME_NAMED for TrainingArguments);
# main spells out the ones TRL names otherwise.
GRPO_SAME_NAMED = same_named(GRPOStageConfig, "num_generations", "temperature", "num_iterations", "scale_rewards",
                             "loss_type", "reward_weights")  # fmt: skip


# ---- Data ------------------------------------------------------------------------------------------


def load_prompts(config: GRPOStageConfig, tokenizer: Any) -> tuple[Any, list[str]]:
    """A datasets.Dataset of prompt (text, for logs and rules), prompt_ids (our template's) and answer, and the
    data files read."""
    from datasets import Dataset

    from common.data import DataError, load_mixed, resolve_specs, spec_files
    from common.templates import encode_generation_prompt, get_template

    specs = resolve_specs(config.dataset, config.data_path, config.dataset_dir)
    for spec in specs:
        if spec.formatting == "alpaca" and not spec.columns and _first_keys(spec) >= {"prompt", "answer"}:
            # a {"prompt", "answer"} file given directly
            spec.columns = {"prompt": "prompt", "response": "answer"}
    records = load_mixed(specs, config.dataset_dir, config.skip_bad_records, config.max_samples, config.seed)
    template = get_template(config.template)
    rows, too_long = [], 0
    for record in records:
        messages = record["messages"]
        if messages[-1]["role"] == "assistant":  # SFT and {"prompt", "answer"} records: the last answer
            turns, answer = messages[:-1], messages[-1]["content"]
        else:  # preference pairs and KTO data: the prompt turns, and the chosen (or a desirable) answer
            turns = messages
            answer = record.get("chosen") or (record["completion"] if record.get("label") else "")
        ids = encode_generation_prompt(template, tokenizer, turns, record.get("system"))
        if len(ids) > config.max_prompt_len:
            too_long += 1
            continue
        rows.append({"prompt": tokenizer.decode(ids), "prompt_ids": ids, "answer": answer})
    if too_long:
        logger.warning(
            "left out %d prompts longer than max_prompt_len=%d tokens", too_long, config.max_prompt_len
        )
    if not rows:
        raise DataError(f"no prompt of at most max_prompt_len={config.max_prompt_len} tokens")
    logger.info("GRPO prompts: %d (template %s)", len(rows), config.template)
    return Dataset.from_list(rows), spec_files(specs, config.dataset_dir)


def _first_keys(spec: Any) -> set[str]:
    from common.data import read_json_records

    try:
        return set(read_json_records(spec.file_name)[0]) if spec.file_name else set()
    except Exception:  # noqa: BLE001 - the real read reports the problem with its line
        return set()


# ---- Rewards ---------------------------------------------------------------------------------------


class RewardModelScore:
    """`reward_model`: the score of scripts/train_rm.py's model on prompt + completion ids, as it was trained
    (right-padded rows, the score head at the last token that is not padding)."""

    __name__ = "reward_model"

    def __init__(self, path: str, dtype: Any, trust_remote_code: bool = False) -> None:
        from transformers import AutoModelForSequenceClassification

        from common.modeling import load_causal_lm

        self.model = load_causal_lm(path, dtype, AutoModelForSequenceClassification, trust_remote_code)
        self.model.requires_grad_(False).eval()
        self.pad_id = self.model.config.pad_token_id

    def to(self, device: Any) -> RewardModelScore:
        self.model.to(device)
        return self

    def __call__(self, completion_ids: list[list[int]], prompt_ids: list[list[int]], **_: Any) -> list[float]:
        import torch

        rows = [list(p) + list(c) for p, c in zip(prompt_ids, completion_ids, strict=True)]
        width = max(len(row) for row in rows)
        ids = torch.tensor(
            [row + [self.pad_id] * (width - len(row)) for row in rows], device=self.model.device
        )
        mask = torch.tensor(
            [[1] * len(row) + [0] * (width - len(row)) for row in rows], device=self.model.device
        )
        with torch.no_grad():
            return self.model(input_ids=ids, attention_mask=mask).logits[:, 0].float().tolist()


def build_rewards(config: GRPOStageConfig, precision: str) -> list[Any]:
    """The reward functions, in the order of `reward_funcs` (their rewards/<name>/mean in the logs)."""
    from common.modeling import torch_dtype
    from common.rewards import build_rule_rewards

    rewards = []
    for name in config.reward_funcs:
        if name == "reward_model":
            rewards.append(
                RewardModelScore(config.reward_model, torch_dtype(precision), config.trust_remote_code)
            )
        else:
            rewards += build_rule_rewards([name], config.answer_pattern, config.max_new_tokens)
    return rewards


class RecordedReward:
    """A reward function that keeps its last scores, so each rollout's per-function rewards can be written
    beside the advantages TRL computed from them."""

    def __init__(self, func: Any) -> None:
        self.func, self.__name__, self.last = func, func.__name__, []

    def __call__(self, **kwargs: Any) -> list[float]:
        self.last = list(self.func(**kwargs))
        return self.last


# ---- Trainer ---------------------------------------------------------------------------------------


def engine_rollout(prompts: list[str], trainer: Any) -> dict[str, Any]:
    """TRL's rollout hook: one sampled completion per (repeated) prompt from common/generation.py's engine, the
    one generate.py, the API and PPO use, on our template's prompt ids; each completion runs up to and
    including its first stop token (eos or the template's end marker)."""
    import torch
    from trl.models import unwrap_model_for_generation

    from common.generation import HFEngine, SamplingParams

    prompt_ids = trainer.batch_prompt_ids
    if len(prompts) != len(prompt_ids):
        raise RuntimeError("prompts and prompt_ids out of step")
    params = SamplingParams(max_tokens=trainer.max_completion_length, temperature=trainer.temperature)
    with (
        unwrap_model_for_generation(trainer.model_wrapped, trainer.accelerator,
                                    gradient_checkpointing_kwargs=trainer.args.gradient_checkpointing_kwargs)
        as policy,
        torch.no_grad(),
        trainer.accelerator.autocast(),
    ):  # fmt: skip
        engine = HFEngine(
            policy, trainer.processing_class, None, trainer.eos_token_ids, max_batch_size=len(prompt_ids)
        )
        completions = engine.generate(prompt_ids, params)
    # logprobs None: TRL computes the sampling policy's log-probabilities itself, as for its own generate().
    return {"prompt_ids": prompt_ids, "completion_ids": [c.token_ids for c in completions], "logprobs": None}


def template_grpo_trainer() -> Any:
    """GRPOTrainer whose rollouts start from our template's prompt_ids (TRL would re-tokenise the prompt text)
    and come from our generation engine (engine_rollout), and which writes each rollout to grpo_rollouts.jsonl."""
    from trl import GRPOTrainer

    class TemplateGRPOTrainer(GRPOTrainer):
        def _generate_and_score_completions(self, inputs):
            self.batch_prompt_ids = [list(x["prompt_ids"]) for x in inputs]
            output = super()._generate_and_score_completions(inputs)
            if self.model.training and self.accelerator.is_main_process:
                self._write_rollout(inputs, output)
            return output

        def _write_rollout(self, inputs, output):
            completions = self.processing_class.batch_decode(
                output["completion_ids"], skip_special_tokens=True
            )
            record = {
                "step": self.state.global_step,
                "num_generations": self.num_generations,
                "prompts": [x["prompt"] for x in inputs],
                "completions": completions,
                "rewards": {f.__name__: f.last for f in self.reward_funcs if isinstance(f, RecordedReward)},
                "reward_weights": self.reward_weights.tolist(),
                "advantages": output["advantages"].tolist(),
            }
            with open(Path(self.args.output_dir) / "grpo_rollouts.jsonl", "a", encoding="utf-8") as log:
                log.write(json.dumps(record, ensure_ascii=False) + "\n")

    return TemplateGRPOTrainer


def jsonl_log_callback(path: Path) -> Any:
    """Each logged step as one JSON line, and a short console line (reward per function, KL, length, clipping)."""
    from transformers import TrainerCallback

    class JsonlLog(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs or not state.is_world_process_zero or "reward" not in logs:
                return
            with open(path, "a", encoding="utf-8") as log:
                log.write(json.dumps({"step": state.global_step, **logs}) + "\n")
            per_function = " ".join(f"{k.split('/')[1]} {v:.3f}" for k, v in logs.items()
                                    if k.startswith("rewards/") and k.endswith("/mean"))  # fmt: skip
            kl = f" kl {logs['kl']:.4f}" if "kl" in logs else ""
            logger.info("step %d/%d: reward %.3f (%s)%s length %.1f clipped %.2f clip ratio %.3f", state.global_step,
                        state.max_steps, logs["reward"], per_function, kl, logs.get("completions/mean_length", 0),
                        logs.get("completions/clipped_ratio", 0), logs.get("clip_ratio/region_mean", 0))  # fmt: skip

    return JsonlLog()


def main(argv: list[str] | None = None) -> Path:
    # ---- Config and run folder ----------------------------------------------------------------
    config, output_dir, checkpoint, precision, resolved = open_run(GRPOStageConfig, argv, __doc__)
    # Heavy imports only now: --help and a refused run folder answer at once.
    from trl import GRPOConfig

    # ---- Data ---------------------------------------------------------------------------------
    tokenizer = load_stage_tokenizer(config, config.adapter_name_or_path, padding_side="left")
    prompts, data_files = load_prompts(config, tokenizer)

    # ---- Model, reference and rewards -----------------------------------------------------------
    model = load_training_model(config, precision, config.use_lora)
    peft_config = None
    if config.use_lora and config.adapter_name_or_path:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, config.adapter_name_or_path, is_trainable=True)
        logger.info("LoRA: training the SFT adapter %s", config.adapter_name_or_path)
    elif config.use_lora:
        peft_config = lora_config(config, model, "CAUSAL_LM", config.model_type)
        logger.info("LoRA (%s)", ", ".join(peft_config.target_modules))
    elif config.adapter_name_or_path:
        from common.modeling import merge_adapter

        model = merge_adapter(model, config.adapter_name_or_path)
    # A completion ends at eos or at the template's end marker, as in generate.py and PPO.
    model.generation_config.eos_token_id = stop_token_ids(get_template(config.template), tokenizer)
    rewards = [RecordedReward(func) for func in build_rewards(config, precision)]

    # ---- Train --------------------------------------------------------------------------------
    args = GRPOConfig(
        **trainer_arguments(config, config, output_dir, precision, has_eval=False),
        **same_named_arguments(config, GRPO_SAME_NAMED),
        max_completion_length=config.max_new_tokens,
        beta=config.kl_coef,
        epsilon=config.cliprange,
        disable_dropout=True,
        log_completions=False,
    )
    # The run record, W&B, and the guard: checkpoint manifests, SIGTERM/SIGINT stop, save errors.
    guard = start_trainer_run(output_dir, resolved, "grpo_config.json", data_files, config, checkpoint,
                              [config.model_name_or_path, config.adapter_name_or_path, config.reward_model])  # fmt: skip
    trainer = template_grpo_trainer()(
        model=model,
        reward_funcs=rewards,
        args=args,
        train_dataset=prompts,
        processing_class=tokenizer,
        callbacks=[*guard.callbacks, jsonl_log_callback(output_dir / "grpo_log.jsonl")],
        peft_config=peft_config,
        rollout_func=engine_rollout,
    )
    for reward in rewards:
        if isinstance(reward.func, RewardModelScore):
            reward.func.to(trainer.accelerator.device)
    reference = ("none (kl_coef 0)" if not config.kl_coef else "a frozen copy" if trainer.ref_model is not None
                 else "the policy with its adapter disabled or the frozen copy of the SFT adapter")  # fmt: skip
    train_and_save(trainer, guard, output_dir, precision, reference)  # and the run record
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(str(output_dir))
        log_config_to_wandb(config.report_to, resolved)
        print(f"GRPO {'adapter' if config.use_lora else 'model'} and run record saved in {output_dir}")
    return output_dir


if __name__ == "__main__":
    run_as_script(main)
