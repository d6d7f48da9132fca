"""RLHF with PPO: improve an SFT policy against a reward model from scripts/train_rm.py.

    python scripts/train_ppo.py --model_config_file run_config/tiny/ppo_config.json
    torchrun --nproc_per_node=8 scripts/train_ppo.py --model_config_file run_config/ppo_config.json
    deepspeed --num_gpus=8 scripts/train_ppo.py --model_config_file run_config/ppo_config.json \\
        --deepspeed run_config/deepspeed_config.json    # ZeRO-2 (ZeRO-3 is refused: sampling would re-gather it)

Each PPO step, on every device:
  1. rollout: sample a response to each of `rollout_batch_size` prompts (common/generation.py's engine);
     a response ends at its first stop token (eos, or the template's end marker), the rest is padding;
  2. score: the reward model reads prompt + response and gives one score (at its last token); the policy's
     and the reference's log-probabilities give a per-token KL penalty, -kl_coef * (log pi - log ref),
     and the score is added at the last response token (common/rlhf.py: token_rewards);
  3. advantages: a value head on the policy's last hidden state estimates each token's return, GAE(gamma,
     lambda) turns rewards and values into advantages and value targets (whitened if asked);
  4. update: `ppo_epochs` passes over the rollouts in shuffled mini-batches, minimising the clipped policy
     loss plus vf_coef times the clipped value loss.

The reference policy is the starting policy, held without a second copy where LoRA allows it:
- LoRA from a full SFT model: a new adapter; the reference is the model with the adapter disabled.
- LoRA from an SFT adapter (`adapter_name_or_path`): that adapter keeps training and a frozen copy of it
  (an adapter-sized "ref" adapter) is the reference.
- full fine-tuning: a frozen copy of the model (in half precision on GPUs).
The value head shares the policy's trunk (and adapter), as in LLaMA-Factory's PPO.

The output folder gets the policy (adapter or full model, loadable by generate.py and merge_lora.py),
value_head.safetensors, the tokenizer, ppo_config.json, run_manifest.json, ppo_log.jsonl (one line of
statistics per step), ppo_results.json (first/last score, timings, peak GPU memory) and ppo_curves.png.
Checkpoints (every save_steps) resume with `--resume_from_checkpoint true`, from the newest checkpoint of
this run whose files match its checkpoint_manifest.json (common/runs.py); resuming equals the uninterrupted
run bit for bit. Nothing in a checkpoint is unpickled: weights.safetensors (trainable weights), optimizer.pt,
scheduler.pt (torch.load with weights_only=True), rng_state_<rank>.safetensors/.json, trainer_state.json
(step, history); under DeepSpeed the engine's pytorch_model/*.pt instead of the first two, read the same way.
A checkpoint holding any other file (accelerate's .pkl files) is refused. SIGTERM or Ctrl-C finishes the
step, saves a checkpoint and exits 143 / 130.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import random
import re
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a file: find `common`

from common.config import ConfigError, Settings, config_field, stage_default  # noqa: E402
from common.data import DataError  # noqa: E402
from common.runs import (  # noqa: E402
    RunError,
    StopSignals,
    load_torch_state,
    open_run,
    run_as_script,
    setup_wandb,
    stop_and_exit,
    write_run_record,
)
from common.settings import (  # noqa: E402
    AdapterStartSettings,
    DataSourceSettings,
    LoraSettings,
    ModelSettings,
    OnPolicySettings,
    OptimSettings,
    RunSettings,
)
from common.training import sharded_sampling_refusal  # noqa: E402

logger = logging.getLogger("train_ppo")


@dataclasses.dataclass
class PPOSettings(Settings):
    # Batches and steps
    rollout_batch_size: int = config_field(16, "prompts per PPO step on each device")
    mini_batch_size: int = config_field(4, "rollouts per forward/backward pass in the update")
    ppo_epochs: int = config_field(4, "passes over each batch of rollouts")
    # PPO
    gamma: float = config_field(1.0, "discount of GAE")
    lam: float = config_field(0.95, "lambda of GAE")
    cliprange_value: float = config_field(0.2, "clip range of the value update")
    vf_coef: float = config_field(0.1, "weight of the value loss")
    whiten_rewards: bool = config_field(
        False, "scale per-token rewards to unit variance over the batch (the mean is kept)"
    )
    whiten_advantages: bool = config_field(True, "normalise advantages to zero mean, unit variance")
    score_clip: float | None = config_field(None, "clip reward-model scores to [-x, x] (null: no clip)")
    missing_eos_penalty: float | None = config_field(
        None, "subtract this from the score of a response cut at max_new_tokens (null: none)"
    )


@dataclasses.dataclass
class PPOConfig(PPOSettings, OnPolicySettings, RunSettings, LoraSettings, OptimSettings, DataSourceSettings,
                AdapterStartSettings, ModelSettings):  # fmt: skip
    # The shared keys PPO starts from other values of
    reward_model: str = stage_default("trained_models/tiny-llama-rm")
    gradient_accumulation_steps: int | None = stage_default(1)
    lr_scheduler_type: str = stage_default("constant")
    logging_steps: int = stage_default(1)
    save_steps: int = stage_default(50)
    save_total_limit: int | None = stage_default(2)
    data_path: str = stage_default("data_dir/sample_preference.json")
    output_dir: str = stage_default("trained_models/tiny-llama-rlhf")
    wandb_project: str = stage_default("belle-rlhf")

    def check(self) -> None:
        if self.gradient_accumulation_steps is None:
            raise ConfigError(
                "gradient_accumulation_steps: PPO needs a number (mini-batches per optimizer step)"
            )
        if self.use_liger_kernel:
            raise ConfigError("use_liger_kernel: PPO computes its log-probabilities from full logits in its own "
                              "loop, where liger's patched loss has no place; leave it false")  # fmt: skip
        update = self.mini_batch_size * self.gradient_accumulation_steps
        if self.rollout_batch_size % update:
            raise ConfigError(f"rollout_batch_size ({self.rollout_batch_size}) must be a multiple of "
                              f"mini_batch_size x gradient_accumulation_steps ({update})")  # fmt: skip
        if self.zero_stage() == 3 or self.fsdp_config:
            raise ConfigError(sharded_sampling_refusal("PPO", "FSDP2" if self.fsdp_config else "ZeRO-3"))


def load_prompts(config: PPOConfig, tokenizer: Any) -> tuple[list[list[int]], list[str]]:
    """Generation prompts from SFT or preference data: every turn up to the last user turn, rendered
    with the template exactly as SFT did; the data's own answer (if any) is dropped. Also the data files read."""
    from common.data import load_mixed, resolve_specs, spec_files
    from common.templates import TemplateError, encode_generation_prompt, get_template

    specs = resolve_specs(config.dataset, config.data_path, config.dataset_dir)
    records = load_mixed(specs, config.dataset_dir, config.skip_bad_records, config.max_samples, config.seed)
    if "messages" not in records[0]:
        raise DataError(f"dataset {records[0]['_source']!r} is plain text; PPO needs prompts (chat data)")
    template = get_template(config.template)
    prompts, too_long = [], 0
    for record in records:
        messages = record["messages"]
        if messages[-1]["role"] == "assistant":
            messages = messages[:-1]
        try:
            ids = encode_generation_prompt(template, tokenizer, messages, record.get("system"))
        except TemplateError as err:
            raise DataError(f"{record['_where']}: template {config.template!r}: {err}") from None
        if len(ids) > config.max_prompt_len:
            too_long += 1
            continue
        prompts.append(ids)
    if too_long:
        logger.warning("left out %d prompts longer than max_prompt_len=%d", too_long, config.max_prompt_len)
    if not prompts:
        raise DataError(f"no prompt fits in max_prompt_len={config.max_prompt_len}")
    return prompts, spec_files(specs, config.dataset_dir)


def pad_rows(rows: list[Any], pad_id: int, left: bool) -> tuple[Any, Any]:
    """(ids, attention_mask) of token-id rows padded to one width, on the left for generation."""
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        row = torch.as_tensor(row, dtype=torch.long)
        span = slice(width - len(row), width) if left else slice(0, len(row))
        ids[i, span], mask[i, span] = row, 1
    return ids, mask


def build_value_model(policy: Any, takes_positions: bool) -> Any:
    """The policy and a scalar value head on its last hidden state, as one module, so that DDP and
    DeepSpeed wrap, clip and checkpoint both together."""
    import torch

    class PolicyWithValueHead(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.policy = policy
            hidden = policy.config.get_text_config().hidden_size
            self.value_head = torch.nn.Linear(hidden, 1)
            torch.nn.init.normal_(self.value_head.weight, std=1 / math.sqrt(hidden + 1))
            torch.nn.init.zeros_(self.value_head.bias)

        def forward(self, input_ids: Any, attention_mask: Any) -> tuple[Any, Any]:
            out = causal_forward(self.policy, input_ids, attention_mask, takes_positions, hidden=True)
            last_hidden = out.hidden_states[-1].to(self.value_head.weight.dtype)
            return out.logits, self.value_head(last_hidden).squeeze(-1)

    return PolicyWithValueHead()


def causal_forward(
    model: Any, input_ids: Any, attention_mask: Any, takes_positions: bool, hidden=False
) -> Any:
    """Forward pass with the position ids generate() used: counted from each row's first real token, so a
    left-padded prompt gets the same logits here as during sampling (BLOOM's ALiBi reads the mask)."""
    extra = {"position_ids": (attention_mask.cumsum(-1) - 1).clamp(min=0)} if takes_positions else {}
    return model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False,
                 output_hidden_states=hidden, **extra)  # fmt: skip


def response_logprobs(logits: Any, responses: Any, prompt_width: int, temperature: float) -> Any:
    """log pi(token) of each response token under the sampling distribution softmax(logits / T)."""
    logits = logits[:, prompt_width - 1 : -1].float() / temperature
    picked = logits.gather(-1, responses.unsqueeze(-1)).squeeze(-1)
    return picked - logits.logsumexp(-1)


def response_mask_after_stop(responses: Any, stop_ids: list[int]) -> tuple[Any, Any]:
    """(mask, ended): 1 up to and including each row's first stop token, 0 after it; whether it stopped."""
    import torch

    is_stop = torch.isin(responses, torch.tensor(stop_ids, device=responses.device))
    stops_before = is_stop.long().cumsum(-1) - is_stop.long()
    return (stops_before == 0).long(), is_stop.any(-1)


def plot_ppo_curves(history: list[dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = ("objective/score", "objective/kl", "loss/value", "policy/entropy")
    figure, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3))
    for axis, key in zip(axes, keys, strict=True):
        axis.plot([h["step"] for h in history], [h[key] for h in history])
        axis.set_title(key)
        axis.set_xlabel("PPO step")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


# ---- Set-up phases ----------------------------------------------------------------------------------


@dataclasses.dataclass
class PromptSchedule:
    """The prompts of each PPO step on this device: a seeded shuffle per epoch, so a resumed run continues
    with exactly the batches it would have had. Every device takes its own equal share (lockstep)."""

    prompts: list[list[int]]
    share: int
    steps_per_epoch: int
    total_steps: int
    rollout_batch_size: int
    seed: int
    process_index: int
    num_processes: int

    def batch(self, step: int) -> list[list[int]]:
        epoch, index = divmod(step, self.steps_per_epoch)
        order = list(range(len(self.prompts)))
        random.Random(self.seed + epoch).shuffle(order)
        mine = order[self.process_index :: self.num_processes][: self.share]
        start = index * self.rollout_batch_size
        return [self.prompts[i] for i in mine[start : start + self.rollout_batch_size]]


@dataclasses.dataclass
class PPOModels:
    """What the loop trains and reads. `model` is the policy with its value head as accelerate prepared it
    (DDP or a DeepSpeed engine); `unwrapped` is the same module, for generate() and the reference."""

    model: Any
    unwrapped: Any
    reward_model: Any
    ref_model: Any | None  # full fine-tuning: a frozen copy of the starting policy
    ref_adapter: str | None  # LoRA from an SFT adapter: the name of its frozen copy
    takes_positions: bool  # the model takes position_ids (LLaMA) rather than reading the mask (BLOOM)


@dataclasses.dataclass
class PPORun:
    """Everything the step phases share, built once by the set-up phases."""

    config: PPOConfig
    accelerator: Any
    tokenizer: Any
    stop_ids: list[int]
    schedule: PromptSchedule
    models: PPOModels
    optimizer: Any
    scheduler: Any
    output_dir: Path
    run_id: str | None = None
    history: list[dict[str, float]] = dataclasses.field(default_factory=list)  # every step, across resumes
    resumed_at: list[int] = dataclasses.field(default_factory=list)  # the steps earlier sessions stopped at


def build_accelerator(config: PPOConfig, precision: str) -> Any:
    """The Accelerator, with DeepSpeed's "auto" values filled from our keys (there is no Trainer to do it)."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import DeepSpeedPlugin

    deepspeed_plugin = None
    if config.deepspeed:
        ds_config = json.loads(Path(config.deepspeed).read_text())
        world = int(os.environ.get("WORLD_SIZE", "1"))
        filled = {
            "train_micro_batch_size_per_gpu": config.mini_batch_size,
            "gradient_accumulation_steps": config.gradient_accumulation_steps,
            "train_batch_size": config.mini_batch_size * config.gradient_accumulation_steps * world,
            "gradient_clipping": config.max_grad_norm,
        }
        ds_config.update({k: v for k, v in filled.items() if ds_config.get(k, "auto") == "auto"})
        for key in ("bf16", "fp16"):
            if ds_config.get(key, {}).get("enabled") == "auto":
                ds_config[key]["enabled"] = precision == key
        deepspeed_plugin = DeepSpeedPlugin(hf_ds_config=ds_config)
    accelerator = Accelerator(
        mixed_precision={"fp32": "no"}.get(precision, precision),
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        deepspeed_plugin=deepspeed_plugin,
        log_with="wandb" if config.report_to == "wandb" else None,
        cpu=not torch.cuda.is_available() and deepspeed_plugin is None,
    )
    logger.info("accelerate: %s on %s, %d process(es), mixed precision %s", accelerator.distributed_type,
                accelerator.device, accelerator.num_processes, accelerator.mixed_precision)  # fmt: skip
    return accelerator


def load_data(config: PPOConfig, accelerator: Any) -> tuple[Any, list[int], PromptSchedule, list[str]]:
    """(tokenizer, stop token ids, prompt schedule, data files read) after checking that the reward model
    reads the same token ids as the policy."""
    from common.modeling import load_tokenizer
    from common.templates import get_template, stop_token_ids
    from common.training import load_stage_tokenizer

    tokenizer = load_stage_tokenizer(config, config.adapter_name_or_path, padding_side="left")
    try:
        reward_tokenizer = load_tokenizer(config.reward_model, trust_remote_code=config.trust_remote_code)
    except OSError as err:
        raise OSError(f"cannot load the reward model {config.reward_model!r} (write one with "
                      f"scripts/train_rm.py): {str(err).splitlines()[0]}") from None  # fmt: skip
    if reward_tokenizer.get_vocab() != tokenizer.get_vocab():
        raise ConfigError(f"the reward model {config.reward_model} has another tokenizer than the policy; "
                          "PPO passes token ids between them, so train the reward model from the same base")  # fmt: skip
    prompts, data_files = load_prompts(config, tokenizer)
    share = len(prompts) // accelerator.num_processes
    if share < config.rollout_batch_size:
        raise DataError(f"{len(prompts)} prompts over {accelerator.num_processes} devices is fewer than "
                        f"rollout_batch_size={config.rollout_batch_size} per device")  # fmt: skip
    steps_per_epoch = share // config.rollout_batch_size
    total_steps = (
        config.max_steps if config.max_steps > 0 else max(1, int(config.num_epochs * steps_per_epoch))
    )
    schedule = PromptSchedule(prompts, share, steps_per_epoch, total_steps, config.rollout_batch_size,
                              config.seed, accelerator.process_index, accelerator.num_processes)  # fmt: skip
    stop_ids = stop_token_ids(get_template(config.template), tokenizer)
    logger.info("prompts: %d (%d per device), %d PPO steps of %d rollouts per device; stop tokens %s",
                len(prompts), share, total_steps, config.rollout_batch_size, stop_ids)  # fmt: skip
    return tokenizer, stop_ids, schedule, data_files


def load_policy(config: PPOConfig, precision: str) -> tuple[Any, Any | None, str | None]:
    """(policy, reference model or None, reference adapter name or None) for the three reference set-ups
    of the module docstring; the reference is the starting policy, copied only where LoRA cannot avoid it."""

    from common.modeling import load_training_model, torch_dtype
    from common.training import lora_config

    half = torch_dtype(precision)
    # fp32 for full fine-tuning, the run's half precision under LoRA, 4/8 bits for QLoRA (quantization_bit).
    policy = load_training_model(config, precision, config.use_lora)
    ref_model, ref_adapter = None, None
    if config.use_lora and config.adapter_name_or_path:
        from peft import PeftModel

        policy = PeftModel.from_pretrained(policy, config.adapter_name_or_path, is_trainable=True)
        policy.add_adapter("ref", policy.peft_config["default"])
        for name, param in policy.named_parameters():
            if ".ref." in name:
                param.data.copy_(policy.get_parameter(name.replace(".ref.", ".default.")).data)
                param.requires_grad_(False)
        policy.set_adapter("default")
        ref_adapter = "ref"
        logger.info("LoRA: training the SFT adapter %s; reference = a frozen copy of it",
                    config.adapter_name_or_path)  # fmt: skip
    elif config.adapter_name_or_path:
        from common.modeling import merge_adapter

        policy = merge_adapter(policy, config.adapter_name_or_path)
    if config.use_lora and not config.adapter_name_or_path:
        from peft import get_peft_model

        policy = get_peft_model(policy, lora_config(config, policy, "CAUSAL_LM", config.model_type))
        logger.info("LoRA: new adapter; reference = the model with the adapter disabled")
    if not config.use_lora:
        import copy

        ref_model = copy.deepcopy(policy).requires_grad_(False).eval()
        if precision != "fp32":
            ref_model.to(half)  # the reference is only read; half precision halves its memory
        logger.info("full fine-tuning: reference = a frozen copy of the starting model")
    return policy, ref_model, ref_adapter


def load_models(config: PPOConfig, precision: str) -> PPOModels:
    """The policy with its value head, the reference and the reward model (not yet on the device)."""
    import inspect

    import torch
    from transformers import AutoModelForSequenceClassification

    from common.modeling import count_parameters, load_causal_lm, torch_dtype

    policy, ref_model, ref_adapter = load_policy(config, precision)
    if config.gradient_checkpointing:
        policy.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if config.use_lora:
            policy.enable_input_require_grads()
    base_forward = (policy.get_base_model() if config.use_lora else policy).forward
    takes_positions = "position_ids" in inspect.signature(base_forward).parameters
    model = build_value_model(policy, takes_positions)
    for module in model.modules():  # old and new log-probs must come from the same function of the weights
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    reward_dtype = torch_dtype(precision) if precision != "fp32" else torch.float32
    reward_model = load_causal_lm(config.reward_model, reward_dtype, AutoModelForSequenceClassification,
                                  config.trust_remote_code)  # fmt: skip
    reward_model.eval().requires_grad_(False)
    trainable, total = count_parameters(model)
    logger.info("parameters: %s trainable of %s (%.2f%%), precision %s", f"{trainable:,}", f"{total:,}",
                100 * trainable / total, precision)  # fmt: skip
    return PPOModels(model, model, reward_model, ref_model, ref_adapter, takes_positions)


def prepare_training(
    config: PPOConfig, accelerator: Any, models: PPOModels, total_steps: int
) -> tuple[Any, Any]:
    """(optimizer, scheduler); wraps `models.model` for DDP / DeepSpeed and moves the read-only models to
    the device."""
    import torch
    from transformers import get_scheduler

    updates_per_step = config.ppo_epochs * config.rollout_batch_size // config.mini_batch_size
    optimizer = torch.optim.AdamW(
        [p for p in models.model.parameters() if p.requires_grad],
        lr=config.learning_rate,
        weight_decay=config.weight_decay,
    )
    # The schedule counts this process's optimizer steps; accelerate's prepared scheduler would step it once
    # per process, so it stays ours (and our checkpoint saves it).
    scheduler = get_scheduler(
        config.lr_scheduler_type, optimizer, num_warmup_steps=config.warmup_steps,
        num_training_steps=total_steps * updates_per_step // config.gradient_accumulation_steps,
    )  # fmt: skip
    models.model, optimizer = accelerator.prepare(models.model, optimizer)
    models.unwrapped = accelerator.unwrap_model(models.model)
    models.reward_model.to(accelerator.device)
    if models.ref_model is not None:
        models.ref_model.to(accelerator.device)
    return optimizer, scheduler


# ---- Step phases: rollout -> score -> advantages -> update -> log -------------------------------------


@dataclasses.dataclass
class Rollout:
    """One step's sampled responses and what the policy, its value head and the reference say about them,
    before the update (no gradients)."""

    prompt_ids: Any
    prompt_mask: Any
    sequences: Any  # prompt (left-padded to prompt_width) + response
    attention: Any
    responses: Any
    mask: Any  # 1 up to and including each response's first stop token
    ended: Any  # whether the response stopped before max_new_tokens
    prompt_width: int
    old_logprobs: Any
    ref_logprobs: Any
    old_values: Any
    entropy: Any


def reference_logits(models: PPOModels, ids: Any, mask: Any) -> Any:
    """Logits of the starting policy, from wherever the reference set-up keeps it."""
    policy = models.unwrapped.policy
    if models.ref_model is not None:
        return causal_forward(models.ref_model, ids, mask, models.takes_positions).logits
    if models.ref_adapter is not None:
        policy.set_adapter(models.ref_adapter)
        try:
            return causal_forward(policy, ids, mask, models.takes_positions).logits
        finally:
            policy.set_adapter("default")
            for name, param in policy.named_parameters():  # set_adapter flips trainability
                if ".default." in name or ".ref." in name:
                    param.requires_grad_(".default." in name)
    with policy.disable_adapter():
        return causal_forward(policy, ids, mask, models.takes_positions).logits


def sample_responses(run: PPORun, prompts: list[list[int]], prompt_ids: Any) -> Any:
    """The left-padded prompts followed by one sampled response each (common/generation.py's engine, the one
    generate.py and the API use), as generate() laid them out: a response runs up to and including its first
    stop token, then padding up to the longest response."""
    import torch

    from common.generation import HFEngine, SamplingParams

    policy, batch = run.models.unwrapped.policy, len(prompts)
    longest = run.config.max_prompt_len + run.config.max_new_tokens  # one static batch size for the whole run
    engine = HFEngine(policy, run.tokenizer, None, run.stop_ids, max_batch_size=batch, longest_row=longest)
    params = SamplingParams(max_tokens=run.config.max_new_tokens, temperature=run.config.temperature)
    completions = engine.generate(prompts, params)
    responses, _ = pad_rows([c.token_ids for c in completions], run.tokenizer.pad_token_id, left=False)
    return torch.cat([prompt_ids, responses.to(prompt_ids.device)], dim=1)


def rollout(run: PPORun, prompts: list[list[int]]) -> Rollout:
    """Sample a response to each prompt, then read log-probs, values and entropy of the policy and the
    reference's log-probs on the whole batch at once."""
    import torch

    from common.rlhf import entropy_from_logits, masked_mean

    config, accelerator, models = run.config, run.accelerator, run.models
    models.model.eval()
    padded = pad_rows(prompts, run.tokenizer.pad_token_id, left=True)
    prompt_ids, prompt_mask = (t.to(accelerator.device) for t in padded)
    width = prompt_ids.shape[1]
    with torch.no_grad(), accelerator.autocast():
        sequences = sample_responses(run, prompts, prompt_ids)
        responses = sequences[:, width:]
        mask, ended = response_mask_after_stop(responses, run.stop_ids)
        attention = torch.cat([prompt_mask, mask], dim=1)
        logits, values = models.unwrapped(sequences, attention)
        old_logprobs = response_logprobs(logits, responses, width, config.temperature)
        entropy = masked_mean(entropy_from_logits(logits[:, width - 1 : -1] / config.temperature), mask)
        old_values = values[:, width - 1 : -1].float()
        del logits
        ref_logits = reference_logits(models, sequences, attention)
        ref_logprobs = response_logprobs(ref_logits, responses, width, config.temperature)
    return Rollout(prompt_ids, prompt_mask, sequences, attention, responses, mask, ended, width,
                   old_logprobs, ref_logprobs, old_values, entropy)  # fmt: skip


def score(run: PPORun, batch: Rollout) -> tuple[Any, Any]:
    """(raw reward-model scores, scores after clipping and the missing-eos penalty): the reward model
    reads each prompt + response without padding between them, right-padded."""
    import torch

    config = run.config
    rows = [torch.cat([p[pm.bool()], r[m.bool()]]) for p, pm, r, m in
            zip(batch.prompt_ids, batch.prompt_mask, batch.responses, batch.mask, strict=True)]  # fmt: skip
    rm_ids, rm_mask = (
        t.to(run.accelerator.device) for t in pad_rows(rows, run.tokenizer.pad_token_id, left=False)
    )
    with torch.no_grad(), run.accelerator.autocast():
        raw_scores = run.models.reward_model(input_ids=rm_ids, attention_mask=rm_mask).logits[:, 0].float()
    scores = raw_scores.clone()
    if config.score_clip is not None:
        scores = scores.clamp(-config.score_clip, config.score_clip)
    if config.missing_eos_penalty is not None:
        scores = scores - config.missing_eos_penalty * (~batch.ended).float()
    return raw_scores, scores


def advantages_and_returns(config: PPOSettings, batch: Rollout, scores: Any) -> tuple[Any, Any]:
    """Per-token rewards (KL penalty, score at the last token), then GAE's advantages and value targets."""
    from common.rlhf import compute_gae, token_rewards, whiten

    mask = batch.mask.float()
    rewards = token_rewards(scores, batch.old_logprobs, batch.ref_logprobs, mask, config.kl_coef)
    if config.whiten_rewards:
        rewards = whiten(rewards, mask, shift_mean=False)
    advantages, returns = compute_gae(rewards, batch.old_values, mask, config.gamma, config.lam)
    if config.whiten_advantages:
        advantages = whiten(advantages, mask)
    return advantages, returns


def update(run: PPORun, batch: Rollout, advantages: Any, returns: Any) -> dict[str, float]:
    """`ppo_epochs` passes of shuffled mini-batches over this step's rollouts, minimising the clipped policy
    loss plus vf_coef times the clipped value loss; returns the mean of each loss and clip fraction."""
    import torch

    from common.rlhf import masked_mean, ppo_policy_loss, value_loss

    config, accelerator, model = run.config, run.accelerator, run.models.model
    width, mask = batch.prompt_width, batch.mask.float()
    model.train()
    totals: dict[str, list[float]] = {k: [] for k in ("pg", "vf", "clip", "vclip", "approxkl")}
    for _ in range(config.ppo_epochs):
        order = torch.randperm(len(batch.sequences), device=accelerator.device)
        for start in range(0, len(batch.sequences), config.mini_batch_size):
            idx = order[start : start + config.mini_batch_size]
            with accelerator.accumulate(model):
                logits, values = model(batch.sequences[idx], batch.attention[idx])
                logprobs = response_logprobs(logits, batch.responses[idx], width, config.temperature)
                new_values = values[:, width - 1 : -1].float()
                pg_loss, clip_frac = ppo_policy_loss(logprobs, batch.old_logprobs[idx], advantages[idx],
                                                     mask[idx], config.cliprange)  # fmt: skip
                vf_loss, vclip_frac = value_loss(new_values, batch.old_values[idx], returns[idx], mask[idx],
                                                 config.cliprange_value)  # fmt: skip
                accelerator.backward(pg_loss + config.vf_coef * vf_loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                run.optimizer.step()
                if accelerator.sync_gradients:
                    run.scheduler.step()
                run.optimizer.zero_grad()
            approx_kl = 0.5 * masked_mean((logprobs.detach() - batch.old_logprobs[idx]) ** 2, mask[idx])
            for key, value in zip(totals, (pg_loss, vf_loss, clip_frac, vclip_frac, approx_kl), strict=True):
                totals[key].append(value.item())
    return {key: sum(values) / len(values) for key, values in totals.items()}


def step_statistics(
    run: PPORun, batch: Rollout, raw_scores: Any, scores: Any, losses: dict[str, float]
) -> dict:
    """The step's statistics, averaged over the devices (ppo_log.jsonl, the progress bar, W&B)."""
    import torch

    kl_coef, mask = run.config.kl_coef, batch.mask.float()
    kl = ((batch.old_logprobs - batch.ref_logprobs) * mask).sum(-1)
    local = {
        "objective/score": raw_scores.mean(),
        "objective/kl": kl.mean(),
        "objective/non_score_reward": (-kl_coef * kl).mean(),
        "objective/rlhf_reward": (scores - kl_coef * kl).mean(),
        "policy/entropy": batch.entropy,
        "policy/clipfrac": torch.tensor(losses["clip"]),
        "policy/approxkl": torch.tensor(losses["approxkl"]),
        "loss/policy": torch.tensor(losses["pg"]),
        "loss/value": torch.tensor(losses["vf"]),
        "value/clipfrac": torch.tensor(losses["vclip"]),
        "response/length": mask.sum(-1).mean(),
        "response/ended_fraction": batch.ended.float().mean(),
    }
    device = run.accelerator.device
    return {k: run.accelerator.reduce(v.float().to(device), "mean").item() for k, v in local.items()}


def ppo_step(run: PPORun, step: int) -> dict[str, float]:
    """One PPO step (0-based `step`): rollout -> score -> advantages -> update; returns its statistics."""
    started = time.perf_counter()
    batch = rollout(run, run.schedule.batch(step))
    raw_scores, scores = score(run, batch)
    advantages, returns = advantages_and_returns(run.config, batch, scores)
    rollout_seconds = time.perf_counter() - started
    losses = update(run, batch, advantages, returns)
    stats = step_statistics(run, batch, raw_scores, scores, losses)
    return stats | {"step": step + 1, "lr": run.scheduler.get_last_lr()[0], "time/rollout_s": rollout_seconds,
                    "time/step_s": time.perf_counter() - started}  # fmt: skip


def log_step(run: PPORun, stats: dict[str, float], progress: Any) -> None:
    step, total = int(stats["step"]), run.schedule.total_steps
    run.history.append(stats)
    progress.set_postfix(score=f"{stats['objective/score']:.3f}", kl=f"{stats['objective/kl']:.3f}")
    if step % run.config.logging_steps == 0 or step == total:
        logger.info("step %d/%d: score %.4f  kl %.4f  entropy %.3f  clipfrac %.3f  value loss %.4f  "
                    "policy loss %.4f  length %.1f", step, total, stats["objective/score"],
                    stats["objective/kl"], stats["policy/entropy"], stats["policy/clipfrac"],
                    stats["loss/value"], stats["loss/policy"], stats["response/length"])  # fmt: skip
    if run.config.report_to == "wandb":
        run.accelerator.log({k: v for k, v in stats.items() if k != "step"}, step=step)


def stop_requested(accelerator: Any, signals: Any) -> bool:
    """Whether any process got SIGTERM/SIGINT: all stop after the same step, or the collectives would hang."""
    return signals.requested_on_any_rank(accelerator.device)


def train(run: PPORun, start_step: int, signals: Any) -> Path | None:
    """Run PPO steps from `start_step` (checkpointing every save_steps); after a stop signal, finish the
    step, save and return the checkpoint (None when the run ended normally)."""
    from tqdm.auto import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    total = run.schedule.total_steps
    progress = tqdm(range(start_step, total), initial=start_step, total=total, desc="PPO",
                    disable=not run.accelerator.is_main_process)  # fmt: skip
    with logging_redirect_tqdm():  # log lines go above the progress bar, not through it
        for step in progress:
            log_step(run, ppo_step(run, step), progress)
            done = step + 1
            stop = done < total and stop_requested(run.accelerator, signals)
            if stop or (done % run.config.save_steps == 0 and done < total):
                checkpoint = save_checkpoint(run, done)
                if stop:
                    return checkpoint
    return None


# ---- Checkpoints: safe formats only ------------------------------------------------------------------
# Resuming never unpickles: weights are safetensors, optimizer/scheduler/scaler states are read with
# torch.load(weights_only=True), RNG states are tensors and JSON, step and history JSON. Under DeepSpeed
# the engine writes its own pytorch_model/*.pt; they are read through the same weights_only loader with
# only DeepSpeed's three plain record classes allowed (see load_deepspeed_state).

CHECKPOINT_FILE_RE = re.compile(
    r"^(weights\.safetensors|optimizer\.pt|scheduler\.pt|grad_scaler\.pt|rng_state_\d+\.(safetensors|json)"
    r"|trainer_state\.json|checkpoint_manifest\.json"
    r"|latest|zero_to_fp32\.py|zero_to_torch\.py|pytorch_model/[\w.-]+\.pt)$"  # DeepSpeed's engine files
)


def check_checkpoint_files(checkpoint: Path) -> None:
    """Refuse a checkpoint holding anything this script did not write (a .pkl from accelerate's
    save_state, a planted file): nothing in a run folder is unpickled, so nothing unknown is read at all."""
    for path in sorted(p for p in checkpoint.rglob("*") if p.is_file()):
        name = path.relative_to(checkpoint).as_posix()
        if not CHECKPOINT_FILE_RE.match(name):
            why = (
                "a pickle, which can run code when loaded"
                if path.suffix in (".pkl", ".pickle")
                else "unknown"
            )
            raise RunError(f"refusing to resume from {checkpoint}: {name} is not a file of a PPO checkpoint "
                           f"({why}); it was not loaded. Remove it, or resume from another checkpoint")  # fmt: skip


def rng_state() -> tuple[dict[str, Any], dict[str, Any]]:
    """(tensors, JSON) of every random generator a PPO step draws from: python, numpy, torch CPU and CUDA."""
    import numpy as np
    import torch

    version, words, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors |= {f"torch_cuda_{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())}
    plain = {"python": [version, list(words), gauss],
             "numpy": [kind, keys.tolist(), pos, has_gauss, cached]}  # fmt: skip
    return tensors, plain


def set_rng_state(tensors: dict[str, Any], plain: dict[str, Any]) -> None:
    import numpy as np
    import torch

    version, words, gauss = plain["python"]
    random.setstate((version, tuple(words), gauss))
    kind, keys, pos, has_gauss, cached = plain["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(tensors["torch_cpu"])
    if torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensors[f"torch_cuda_{i}"] for i in range(torch.cuda.device_count())])


def uses_deepspeed(accelerator: Any) -> bool:
    from accelerate.utils import DistributedType

    return accelerator.distributed_type == DistributedType.DEEPSPEED


def write_checkpoint_files(run: PPORun, folder: Path, step: int) -> None:
    """Every process writes its part of checkpoint `step` into `folder` (DeepSpeed: each its optimizer shard)."""
    import torch
    from safetensors.torch import save_file

    accelerator = run.accelerator
    if uses_deepspeed(accelerator):
        run.models.model.save_checkpoint(str(folder), tag="pytorch_model")
    elif accelerator.is_main_process:  # DDP keeps the same weights and optimizer state on every process
        trainable = {n: p.detach().cpu().contiguous() for n, p in run.models.unwrapped.named_parameters()
                     if p.requires_grad}  # fmt: skip
        save_file(trainable, str(folder / "weights.safetensors"))
        torch.save(run.optimizer.state_dict(), folder / "optimizer.pt")
    if accelerator.is_main_process:
        torch.save(run.scheduler.state_dict(), folder / "scheduler.pt")
        if accelerator.scaler is not None:
            torch.save(accelerator.scaler.state_dict(), folder / "grad_scaler.pt")
        state = {"global_step": step, "accelerator_step": accelerator.step, "run_id": run.run_id,
                 "resumed_at": run.resumed_at, "log_history": run.history}  # fmt: skip
        (folder / "trainer_state.json").write_text(json.dumps(state))
    tensors, plain = rng_state()
    save_file(tensors, str(folder / f"rng_state_{accelerator.process_index}.safetensors"))
    (folder / f"rng_state_{accelerator.process_index}.json").write_text(json.dumps(plain))


def save_checkpoint(run: PPORun, step: int) -> Path:
    """Write checkpoint-N under a temporary name, rename it when every process has written its part, then
    write its manifest (common/runs.py) as the very last step: only a checkpoint with a matching manifest
    is ever resumed from. Old checkpoints of this run are rotated; other folders are never touched."""
    from common.runs import (
        checkpoint_run_id,
        move_aside,
        rotate_checkpoints,
        save_errors_as_run_error,
        write_checkpoint_manifest,
    )

    accelerator, output_dir = run.accelerator, run.output_dir
    partial, final = output_dir / f".checkpoint-{step}.partial", output_dir / f"checkpoint-{step}"
    with save_errors_as_run_error(final):
        if accelerator.is_main_process:
            if (
                partial.exists()
            ):  # a save of this step that crashed: never resumable, never anyone's checkpoint
                shutil.rmtree(partial)
            partial.mkdir()
        accelerator.wait_for_everyone()
        write_checkpoint_files(run, partial, step)
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            if final.exists():  # from the session this one resumed: ours is replaced, another run's kept
                if checkpoint_run_id(final) == run.run_id:
                    shutil.rmtree(final)
                else:
                    move_aside(output_dir, [final.name])
            os.replace(partial, final)
            write_checkpoint_manifest(final, run.run_id, step)
            rotate_checkpoints(output_dir, run.run_id, run.config.save_total_limit)
        accelerator.wait_for_everyone()
    return final


def load_deepspeed_state(engine: Any, checkpoint: Path) -> None:
    """The engine's own files (pytorch_model/*.pt), read weights-only (common/runs.py)."""
    from common.runs import deepspeed_loads_weights_only

    with deepspeed_loads_weights_only():
        load_path, _ = engine.load_checkpoint(
            str(checkpoint), tag="pytorch_model", load_lr_scheduler_states=False
        )
    if load_path is None:
        raise RunError(f"{checkpoint}: DeepSpeed found no engine checkpoint in pytorch_model/")


def load_checkpoint(run: PPORun, checkpoint: Path) -> int:
    """Restore weights, optimizer, schedule, RNG and history from `checkpoint`; returns its PPO step."""
    from safetensors.torch import load_file

    check_checkpoint_files(checkpoint)
    accelerator = run.accelerator
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    if uses_deepspeed(accelerator):
        load_deepspeed_state(run.models.model, checkpoint)
    else:
        saved = load_file(str(checkpoint / "weights.safetensors"))
        params = {n: p for n, p in run.models.unwrapped.named_parameters() if p.requires_grad}
        if saved.keys() != params.keys():
            raise RunError(f"{checkpoint}/weights.safetensors holds other parameters than this run trains "
                           "(another model or LoRA set-up?)")  # fmt: skip
        for name, param in params.items():
            param.data.copy_(saved[name])
        run.optimizer.load_state_dict(load_torch_state(checkpoint / "optimizer.pt"))
    run.scheduler.load_state_dict(load_torch_state(checkpoint / "scheduler.pt"))
    if accelerator.scaler is not None:
        accelerator.scaler.load_state_dict(load_torch_state(checkpoint / "grad_scaler.pt"))
    rank = accelerator.process_index
    plain = json.loads((checkpoint / f"rng_state_{rank}.json").read_text())
    set_rng_state(load_file(str(checkpoint / f"rng_state_{rank}.safetensors")), plain)
    accelerator.step = state["accelerator_step"]
    run.history, run.resumed_at = state["log_history"], [*state["resumed_at"], state["global_step"]]
    logger.info("resumed from %s at PPO step %d", checkpoint, state["global_step"])
    return state["global_step"]


# ---- Outputs -----------------------------------------------------------------------------------------


def run_results(history: list[dict[str, float]], resumed_at: list[int]) -> dict[str, Any]:
    """ppo_results.json: figures over the whole run, resumed sessions included (the history is carried in
    every checkpoint); peak GPU memory is this session's."""
    import torch

    results = {
        "ppo_steps": len(history),
        "first_score": history[0]["objective/score"] if history else None,
        "last_score": history[-1]["objective/score"] if history else None,
        "last_kl": history[-1]["objective/kl"] if history else None,
        "step_seconds_median": statistics.median(h["time/step_s"] for h in history) if history else None,
        "rollout_seconds_median": statistics.median(h["time/rollout_s"] for h in history)
        if history
        else None,
        "resumed_at_steps": resumed_at,
    }
    if torch.cuda.is_available():
        results["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return results


def save_outputs(run: PPORun) -> None:
    """The policy (adapter or full model), value head, tokenizer, step log, results and curves."""
    from safetensors.torch import save_file

    run.accelerator.wait_for_everyone()
    if not run.accelerator.is_main_process:
        return
    output_dir, unwrapped, history = run.output_dir, run.models.unwrapped, run.history
    save_kwargs = {"selected_adapters": ["default"]} if run.models.ref_adapter else {}
    unwrapped.policy.save_pretrained(str(output_dir), **save_kwargs)
    head = {k: v.detach().float().cpu().contiguous() for k, v in unwrapped.value_head.state_dict().items()}
    save_file(head, str(output_dir / "value_head.safetensors"))
    run.tokenizer.padding_side = "right"  # training-time default for whoever loads it next
    run.tokenizer.save_pretrained(str(output_dir))
    with open(output_dir / "ppo_log.jsonl", "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(h) + "\n" for h in history)
    results = run_results(history, run.resumed_at)
    (output_dir / "ppo_results.json").write_text(json.dumps(results, indent=2) + "\n")
    if history:
        plot_ppo_curves(history, output_dir / "ppo_curves.png")
        first, last = history[0], history[-1]
        logger.info("score %.4f -> %.4f, kl %.4f -> %.4f over %d PPO steps", first["objective/score"],
                    last["objective/score"], first["objective/kl"], last["objective/kl"], len(history))  # fmt: skip
    print(
        f"PPO policy ({'adapter' if run.config.use_lora else 'model'}) and run record saved in {output_dir}"
    )


# ---- Main --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> Path:
    # ---- Config and run folder ----------------------------------------------------------------
    config, output_dir, checkpoint, precision, resolved = open_run(PPOConfig, argv, __doc__)
    # Heavy imports only now: --help and a refused run folder answer at once.
    from transformers import set_seed

    from common.modeling import avoid_cudnn_attention

    if checkpoint is not None:
        check_checkpoint_files(checkpoint)  # before minutes of model loading
    accelerator = build_accelerator(config, precision)
    set_seed(config.seed + accelerator.process_index)  # each device samples different rollouts
    avoid_cudnn_attention()  # every step's batch has a new width: cuDNN would plan each one anew

    # ---- Data and models ----------------------------------------------------------------------
    tokenizer, stop_ids, schedule, data_files = load_data(config, accelerator)
    models = load_models(config, precision)
    optimizer, scheduler = prepare_training(config, accelerator, models, schedule.total_steps)
    run = PPORun(config, accelerator, tokenizer, stop_ids, schedule, models, optimizer, scheduler, output_dir)
    start_step = load_checkpoint(run, checkpoint) if checkpoint is not None else 0

    # Every process has checked output_dir above; only now may the main one write into it.
    accelerator.wait_for_everyone()
    run.run_id = write_run_record(output_dir, resolved, "ppo_config.json", data_files, config.seed,
                                  checkpoint=checkpoint,
                                  model_paths=[config.model_name_or_path, config.adapter_name_or_path,
                                               config.reward_model])  # fmt: skip
    if config.report_to == "wandb":
        setup_wandb(config.report_to, config.wandb_project, config.run_name or output_dir.name)
        accelerator.init_trackers(config.wandb_project, config=resolved,
                                  init_kwargs={"wandb": {"name": config.run_name or output_dir.name}})  # fmt: skip

    # ---- Train --------------------------------------------------------------------------------
    signals = StopSignals()
    signals.install()
    stopped_at = train(run, start_step, signals)
    if stopped_at is not None:
        stop_and_exit(signals, int(run.history[-1]["step"]), stopped_at)  # exits 143 / 130
    signals.restore()

    # ---- Save ---------------------------------------------------------------------------------
    save_outputs(run)
    if config.report_to == "wandb":
        from common.runs import log_config_to_wandb

        log_config_to_wandb(config.report_to, resolved)
        accelerator.end_training()
    return output_dir


if __name__ == "__main__":
    run_as_script(main)
