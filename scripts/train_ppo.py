"""RLHF with PPO: improve an SFT policy against a reward model from scripts/train_rm.py.

    python scripts/train_ppo.py --model_config_file run_config/tiny/ppo_config.json
    torchrun --nproc_per_node=8 scripts/train_ppo.py --model_config_file run_config/ppo_config.json
    deepspeed --num_gpus=8 scripts/train_ppo.py --model_config_file run_config/ppo_config.json \\
        --deepspeed run_config/deepspeed_config.json                    # ZeRO-2 (ZeRO-3 is refused)

Each PPO step, on every device:
  1. rollout: sample a response to each of `rollout_batch_size` prompts (left-padded batch, `generate`);
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
Checkpoints (every save_steps) resume with `--resume_from_checkpoint true`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import random
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a file: find `common`

from common.config import ConfigError, config_field, config_to_dict, parse_config  # noqa: E402
from common.data import DataError  # noqa: E402
from common.runs import RunError, setup_logging  # noqa: E402
from common.training import LoraSettings, ModelDataSettings, RunSettings, validate_shared  # noqa: E402

logger = logging.getLogger("train_ppo")


@dataclasses.dataclass
class PPOSettings:
    reward_model: str = config_field(
        "trained_models/tiny-llama-rm", "reward model folder written by scripts/train_rm.py"
    )
    max_prompt_len: int = config_field(256, "prompts longer than this many tokens are left out (counted)")
    max_new_tokens: int = config_field(128, "longest response; one cut here gets missing_eos_penalty")
    temperature: float = config_field(1.0, "sampling temperature of the rollouts (also used in the loss)")
    # Batches and steps
    rollout_batch_size: int = config_field(16, "prompts per PPO step on each device")
    mini_batch_size: int = config_field(4, "rollouts per forward/backward pass in the update")
    gradient_accumulation_steps: int = config_field(1, "mini-batches per optimizer step")
    ppo_epochs: int = config_field(4, "passes over each batch of rollouts")
    num_epochs: float = config_field(1.0, "passes over the prompts")
    max_steps: int = config_field(-1, "stop after this many PPO steps (-1: run num_epochs)")
    learning_rate: float = config_field(1e-5, "peak learning rate")
    lr_scheduler_type: str = config_field("constant", "transformers schedule name: constant, linear, cosine")
    warmup_steps: int = config_field(0, "linear warm-up, in optimizer steps")
    weight_decay: float = config_field(0.0, "AdamW weight decay")
    max_grad_norm: float = config_field(1.0, "clip the gradient norm to this")
    gradient_checkpointing: bool = config_field(False, "recompute activations to save memory")
    # PPO
    kl_coef: float = config_field(0.05, "weight of the per-token KL penalty against the reference policy")
    gamma: float = config_field(1.0, "discount of GAE")
    lam: float = config_field(0.95, "lambda of GAE")
    cliprange: float = config_field(0.2, "clip range of the policy ratio")
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
    # Logging and saving
    logging_steps: int = config_field(1, "print statistics every N PPO steps")
    save_steps: int = config_field(50, "save a checkpoint every N PPO steps")
    save_total_limit: int | None = config_field(2, "keep at most this many checkpoints (null: all)")


@dataclasses.dataclass
class PPOConfig(RunSettings, PPOSettings, LoraSettings, ModelDataSettings):
    def validate(self) -> None:
        validate_shared(self)
        update = self.mini_batch_size * self.gradient_accumulation_steps
        if self.rollout_batch_size % update:
            raise ConfigError(f"rollout_batch_size ({self.rollout_batch_size}) must be a multiple of "
                              f"mini_batch_size x gradient_accumulation_steps ({update})")  # fmt: skip
        if self.temperature <= 0:
            raise ConfigError("temperature must be > 0 (PPO needs sampled rollouts)")
        if self.deepspeed:
            stage = json.loads(Path(self.deepspeed).read_text()).get("zero_optimization", {}).get("stage", 0)
            if stage == 3:
                raise ConfigError("ZeRO-3 shards the weights that generate() needs whole; use ZeRO-2 for PPO")


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


def save_checkpoint(accelerator: Any, output_dir: Path, step: int, history: list, limit: int | None) -> None:
    """Write checkpoint-N under a temporary name and rename it when complete, so a crash mid-save never
    leaves a checkpoint that looks resumable (trainer_state.json is written last, inside)."""
    partial = output_dir / f".checkpoint-{step}.partial"
    accelerator.save_state(str(partial))
    if accelerator.is_main_process:
        (partial / "trainer_state.json").write_text(json.dumps({"global_step": step, "log_history": history}))
        final = output_dir / f"checkpoint-{step}"
        if final.exists():  # our own checkpoint of this step from a run this one resumed
            shutil.rmtree(final)
        os.replace(partial, final)
        ours = sorted((int(p.name.split("-")[1]), p) for p in output_dir.glob("checkpoint-*") if p.is_dir())
        for _, old in ours[:-limit] if limit else []:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()


def main(argv: list[str] | None = None) -> Path:
    setup_logging()
    # ---- Config -------------------------------------------------------------------------------
    config = parse_config(
        PPOConfig,
        argv,
        description=__doc__,
        config_file_flags={
            "model_config_file": "run config with any of the keys below (run_config/tiny/ppo_config.json)",
            "lora_hyperparams_file": "LoRA hyper-parameters (lora_r, lora_alpha, lora_dropout, lora_target_modules)",
        },
    )
    import inspect

    import torch
    from accelerate import Accelerator
    from accelerate.utils import DeepSpeedPlugin
    from tqdm.auto import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm
    from transformers import AutoModelForSequenceClassification, get_scheduler, set_seed

    from common.modeling import count_parameters, load_causal_lm, load_tokenizer, pick_precision, torch_dtype
    from common.rlhf import (
        compute_gae,
        entropy_from_logits,
        masked_mean,
        ppo_policy_loss,
        token_rewards,
        value_loss,
        whiten,
    )
    from common.runs import setup_wandb, write_run_record
    from common.templates import get_template, stop_token_ids
    from common.training import load_stage_tokenizer, lora_config, prepare_run_dir

    output_dir, checkpoint = prepare_run_dir(config)
    precision = pick_precision(config.precision)
    deepspeed_plugin = None
    if config.deepspeed:
        # Our own loop has no Trainer to fill DeepSpeed's "auto" values, so they are filled here.
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
    resolved = config_to_dict(config) | {
        "_resolved": {"precision": precision, "world_size": accelerator.num_processes}
    }
    set_seed(config.seed + accelerator.process_index)  # each device samples different rollouts

    # ---- Data ---------------------------------------------------------------------------------
    tokenizer = load_stage_tokenizer(config, padding_side="left")
    try:
        reward_tokenizer = load_tokenizer(config.reward_model)
    except OSError as err:
        raise OSError(f"cannot load the reward model {config.reward_model!r} (write one with "
                      f"scripts/train_rm.py): {str(err).splitlines()[0]}") from None  # fmt: skip
    if reward_tokenizer.get_vocab() != tokenizer.get_vocab():
        raise ConfigError(f"the reward model {config.reward_model} has another tokenizer than the policy; "
                          "PPO passes token ids between them, so train the reward model from the same base")  # fmt: skip
    prompts, data_files = load_prompts(config, tokenizer)
    # Every device takes its own share; equal shares keep the devices' step counts in lockstep.
    share = len(prompts) // accelerator.num_processes
    if share < config.rollout_batch_size:
        raise DataError(f"{len(prompts)} prompts over {accelerator.num_processes} devices is fewer than "
                        f"rollout_batch_size={config.rollout_batch_size} per device")  # fmt: skip
    steps_per_epoch = share // config.rollout_batch_size
    total_steps = (
        config.max_steps if config.max_steps > 0 else max(1, int(config.num_epochs * steps_per_epoch))
    )
    stop_ids = stop_token_ids(get_template(config.template), tokenizer)
    logger.info("prompts: %d (%d per device), %d PPO steps of %d rollouts per device; stop tokens %s",
                len(prompts), share, total_steps, config.rollout_batch_size, stop_ids)  # fmt: skip

    def prompt_batch(step: int) -> list[list[int]]:
        """The prompts of PPO step `step` on this device: a seeded shuffle per epoch, so a resumed run
        continues with exactly the batches it would have had."""
        epoch, index = divmod(step, steps_per_epoch)
        order = list(range(len(prompts)))
        random.Random(config.seed + epoch).shuffle(order)
        mine = order[accelerator.process_index :: accelerator.num_processes][:share]
        start = index * config.rollout_batch_size
        return [prompts[i] for i in mine[start : start + config.rollout_batch_size]]

    # ---- Models -------------------------------------------------------------------------------
    half = torch_dtype(precision)
    policy = load_causal_lm(config.model_name_or_path, dtype=half if config.use_lora else torch.float32)
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

        policy = get_peft_model(policy, lora_config(config, policy, "CAUSAL_LM"))
        logger.info("LoRA: new adapter; reference = the model with the adapter disabled")
    if not config.use_lora:
        import copy

        ref_model = copy.deepcopy(policy).requires_grad_(False).eval()
        if precision != "fp32":
            ref_model.to(half)  # the reference is only read; half precision halves its memory
        logger.info("full fine-tuning: reference = a frozen copy of the starting model")
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
    reward_model = AutoModelForSequenceClassification.from_pretrained(
        config.reward_model, dtype=half if precision != "fp32" else torch.float32
    ).eval()
    reward_model.requires_grad_(False)
    trainable, total = count_parameters(model)
    logger.info("parameters: %s trainable of %s (%.2f%%), precision %s", f"{trainable:,}", f"{total:,}",
                100 * trainable / total, precision)  # fmt: skip

    updates_per_step = config.ppo_epochs * config.rollout_batch_size // config.mini_batch_size
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=config.learning_rate,
        weight_decay=config.weight_decay,
    )
    scheduler = get_scheduler(
        config.lr_scheduler_type, optimizer, num_warmup_steps=config.warmup_steps,
        num_training_steps=total_steps * updates_per_step // config.gradient_accumulation_steps,
    )  # fmt: skip
    # The schedule counts this process's optimizer steps; accelerate's prepared scheduler would step it once
    # per process, so it stays ours and is only registered for checkpoints.
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(scheduler)
    device = accelerator.device
    reward_model.to(device)
    if ref_model is not None:
        ref_model.to(device)
    unwrapped = accelerator.unwrap_model(model)

    start_step, history = 0, []
    if checkpoint is not None:
        accelerator.load_state(str(checkpoint))
        state = json.loads((checkpoint / "trainer_state.json").read_text())
        start_step, history = state["global_step"], state["log_history"]
        logger.info("resumed from %s at PPO step %d", checkpoint, start_step)

    # Every process has checked output_dir above; only now may the main one write into it.
    accelerator.wait_for_everyone()
    write_run_record(output_dir, resolved, "ppo_config.json", data_files, config.seed)
    if config.report_to == "wandb":
        setup_wandb(config.report_to, config.wandb_project, config.run_name or output_dir.name)
        accelerator.init_trackers(config.wandb_project, config=resolved,
                                  init_kwargs={"wandb": {"name": config.run_name or output_dir.name}})  # fmt: skip

    @torch.no_grad()
    def reference_logits(ids: Any, mask: Any) -> Any:
        if ref_model is not None:
            return causal_forward(ref_model, ids, mask, takes_positions).logits
        if ref_adapter is not None:
            unwrapped.policy.set_adapter(ref_adapter)
            try:
                return causal_forward(unwrapped.policy, ids, mask, takes_positions).logits
            finally:
                unwrapped.policy.set_adapter("default")
                for name, param in unwrapped.policy.named_parameters():  # set_adapter flips trainability
                    if ".default." in name or ".ref." in name:
                        param.requires_grad_(".default." in name)
        with unwrapped.policy.disable_adapter():
            return causal_forward(unwrapped.policy, ids, mask, takes_positions).logits

    # ---- Train --------------------------------------------------------------------------------
    progress = tqdm(range(start_step, total_steps), initial=start_step, total=total_steps, desc="PPO",
                    disable=not accelerator.is_main_process)  # fmt: skip
    with logging_redirect_tqdm():  # log lines go above the progress bar, not through it
        for step in progress:
            started = time.perf_counter()
            # Rollout: sample, then score every token with the policy, the reference, the value head and RM.
            model.eval()
            prompt_ids, prompt_mask = (
                t.to(device) for t in pad_rows(prompt_batch(step), tokenizer.pad_token_id, left=True)
            )
            width = prompt_ids.shape[1]
            with torch.no_grad(), accelerator.autocast():
                sequences = unwrapped.policy.generate(
                    input_ids=prompt_ids, attention_mask=prompt_mask, do_sample=True, temperature=config.temperature,
                    top_k=0, top_p=1.0, max_new_tokens=config.max_new_tokens, eos_token_id=stop_ids,
                    pad_token_id=tokenizer.pad_token_id,
                )  # fmt: skip
                responses = sequences[:, width:]
                mask, ended = response_mask_after_stop(responses, stop_ids)
                attention = torch.cat([prompt_mask, mask], dim=1)
                logits, values = unwrapped(sequences, attention)
                old_logprobs = response_logprobs(logits, responses, width, config.temperature)
                entropy = masked_mean(
                    entropy_from_logits(logits[:, width - 1 : -1] / config.temperature), mask
                )
                old_values = values[:, width - 1 : -1].float()
                ref_logprobs = response_logprobs(reference_logits(sequences, attention), responses, width,
                                                 config.temperature)  # fmt: skip
                del logits
                rows = [torch.cat([p[pm.bool()], r[m.bool()]]) for p, pm, r, m in
                        zip(prompt_ids, prompt_mask, responses, mask, strict=True)]  # fmt: skip
                rm_ids, rm_mask = (t.to(device) for t in pad_rows(rows, tokenizer.pad_token_id, left=False))
                scores = reward_model(input_ids=rm_ids, attention_mask=rm_mask).logits[:, 0].float()
            raw_scores = scores.clone()
            if config.score_clip is not None:
                scores = scores.clamp(-config.score_clip, config.score_clip)
            if config.missing_eos_penalty is not None:
                scores = scores - config.missing_eos_penalty * (~ended).float()
            mask_f = mask.float()
            rewards = token_rewards(scores, old_logprobs, ref_logprobs, mask_f, config.kl_coef)
            if config.whiten_rewards:
                rewards = whiten(rewards, mask_f, shift_mean=False)
            advantages, returns = compute_gae(rewards, old_values, mask_f, config.gamma, config.lam)
            if config.whiten_advantages:
                advantages = whiten(advantages, mask_f)
            rollout_seconds = time.perf_counter() - started

            # Update: several epochs of shuffled mini-batches over this batch of rollouts.
            model.train()
            totals: dict[str, list[float]] = {k: [] for k in ("pg", "vf", "clip", "vclip", "approxkl")}
            for _ in range(config.ppo_epochs):
                order = torch.randperm(len(sequences), device=device)
                for start in range(0, len(sequences), config.mini_batch_size):
                    idx = order[start : start + config.mini_batch_size]
                    with accelerator.accumulate(model):
                        logits, values = model(sequences[idx], attention[idx])
                        logprobs = response_logprobs(logits, responses[idx], width, config.temperature)
                        new_values = values[:, width - 1 : -1].float()
                        pg_loss, clip_frac = ppo_policy_loss(logprobs, old_logprobs[idx], advantages[idx],
                                                             mask_f[idx], config.cliprange)  # fmt: skip
                        vf_loss, vclip_frac = value_loss(new_values, old_values[idx], returns[idx], mask_f[idx],
                                                         config.cliprange_value)  # fmt: skip
                        accelerator.backward(pg_loss + config.vf_coef * vf_loss)
                        if accelerator.sync_gradients:
                            accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                        optimizer.step()
                        if accelerator.sync_gradients:
                            scheduler.step()
                        optimizer.zero_grad()
                    approx_kl = 0.5 * masked_mean((logprobs.detach() - old_logprobs[idx]) ** 2, mask_f[idx])
                    for key, value in zip(
                        totals, (pg_loss, vf_loss, clip_frac, vclip_frac, approx_kl), strict=True
                    ):
                        totals[key].append(value.item())

            # ---- Log and save -------------------------------------------------------------------------
            kl = ((old_logprobs - ref_logprobs) * mask_f).sum(-1)
            local = {
                "objective/score": raw_scores.mean(),
                "objective/kl": kl.mean(),
                "objective/non_score_reward": (-config.kl_coef * kl).mean(),
                "objective/rlhf_reward": (scores - config.kl_coef * kl).mean(),
                "policy/entropy": entropy,
                "policy/clipfrac": torch.tensor(sum(totals["clip"]) / len(totals["clip"])),
                "policy/approxkl": torch.tensor(sum(totals["approxkl"]) / len(totals["approxkl"])),
                "loss/policy": torch.tensor(sum(totals["pg"]) / len(totals["pg"])),
                "loss/value": torch.tensor(sum(totals["vf"]) / len(totals["vf"])),
                "value/clipfrac": torch.tensor(sum(totals["vclip"]) / len(totals["vclip"])),
                "response/length": mask_f.sum(-1).mean(),
                "response/ended_fraction": ended.float().mean(),
            }
            stats = {k: accelerator.reduce(v.float().to(device), "mean").item() for k, v in local.items()}
            stats |= {"step": step + 1, "lr": scheduler.get_last_lr()[0], "time/rollout_s": rollout_seconds,
                      "time/step_s": time.perf_counter() - started}  # fmt: skip
            history.append(stats)
            progress.set_postfix(score=f"{stats['objective/score']:.3f}", kl=f"{stats['objective/kl']:.3f}")
            if (step + 1) % config.logging_steps == 0 or step + 1 == total_steps:
                logger.info("step %d/%d: score %.4f  kl %.4f  entropy %.3f  clipfrac %.3f  value loss %.4f  "
                            "policy loss %.4f  length %.1f", step + 1, total_steps, stats["objective/score"],
                            stats["objective/kl"], stats["policy/entropy"], stats["policy/clipfrac"],
                            stats["loss/value"], stats["loss/policy"], stats["response/length"])  # fmt: skip
            if config.report_to == "wandb":
                accelerator.log({k: v for k, v in stats.items() if k != "step"}, step=step + 1)
            if (step + 1) % config.save_steps == 0 and step + 1 < total_steps:
                save_checkpoint(accelerator, output_dir, step + 1, history, config.save_total_limit)

    # ---- Save ---------------------------------------------------------------------------------
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        from safetensors.torch import save_file

        save_kwargs = {"selected_adapters": ["default"]} if ref_adapter else {}
        unwrapped.policy.save_pretrained(str(output_dir), **save_kwargs)
        head = {
            k: v.detach().float().cpu().contiguous() for k, v in unwrapped.value_head.state_dict().items()
        }
        save_file(head, str(output_dir / "value_head.safetensors"))
        tokenizer.padding_side = "right"  # training-time default for whoever loads it next
        tokenizer.save_pretrained(str(output_dir))
        with open(output_dir / "ppo_log.jsonl", "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(h) + "\n" for h in history)
        results = {
            "ppo_steps": len(history),
            "first_score": history[0]["objective/score"] if history else None,
            "last_score": history[-1]["objective/score"] if history else None,
            "last_kl": history[-1]["objective/kl"] if history else None,
            "step_seconds_median": statistics.median(h["time/step_s"] for h in history) if history else None,
            "rollout_seconds_median": statistics.median(h["time/rollout_s"] for h in history)
            if history
            else None,
        }
        if torch.cuda.is_available():
            results["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
        (output_dir / "ppo_results.json").write_text(json.dumps(results, indent=2) + "\n")
        if history:
            plot_ppo_curves(history, output_dir / "ppo_curves.png")
        first, last = history[0], history[-1]
        logger.info("score %.4f -> %.4f, kl %.4f -> %.4f over %d PPO steps", first["objective/score"],
                    last["objective/score"], first["objective/kl"], last["objective/kl"], len(history))  # fmt: skip
        print(
            f"PPO policy ({'adapter' if config.use_lora else 'model'}) and run record saved in {output_dir}"
        )
    if config.report_to == "wandb":
        from common.runs import log_config_to_wandb

        log_config_to_wandb(config.report_to, resolved)
        accelerator.end_training()
    from common.runs import finish_distributed

    finish_distributed()
    return output_dir


if __name__ == "__main__":
    try:
        main()
    except (ConfigError, DataError, RunError, OSError) as err:
        sys.exit(f"error: {err}")
