"""Loss and advantage math of reward modelling, DPO (and ORPO, SimPO, KTO), PPO and GRPO, and the reference
policy DPO and KTO hold (`policy_and_reference`).

The math is small pure functions on tensors, so tests can check each one against a hand computation:

    .venv/bin/pytest tests/test_rlhf_losses.py

Conventions: per-token tensors are shaped (batch, response_len) and come with a float `mask` of the
same shape (1 for real response tokens, 0 for padding after eos); reductions are masked means.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from common.training import PreferenceTrainingConfig

logger = logging.getLogger(__name__)

DPO_LOSS_TYPES = ("sigmoid", "ipo", "hinge")  # against a reference policy
REFERENCE_FREE_LOSS_TYPES = ("orpo", "simpo")  # from the policy's own log-probabilities alone


def masked_mean(values: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over the positions where mask is 1 (all positions without a mask)."""
    if mask is None:
        return values.mean()
    return (values * mask).sum() / mask.sum().clamp(min=1)


def whiten(
    values: torch.Tensor, mask: torch.Tensor | None = None, shift_mean: bool = True, eps: float = 1e-8
) -> torch.Tensor:
    """Scale to unit variance (and zero mean unless shift_mean=False) over the masked positions.

    shift_mean=False keeps the sign of rewards (used for reward scaling), True centres advantages.
    """
    mean = masked_mean(values, mask)
    centred = values - mean
    var = masked_mean(centred**2, mask)
    out = centred * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return out if mask is None else out * mask


def pairwise_reward_loss(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """Bradley-Terry loss of a scalar reward model: mean of -log sigmoid(r_chosen - r_rejected)."""
    # logsigmoid is the stable form of log(sigmoid(x)) for large negative margins
    return -F.logsigmoid(chosen - rejected).mean()


def dpo_loss(
    policy_chosen_logp: torch.Tensor,
    policy_rejected_logp: torch.Tensor,
    ref_chosen_logp: torch.Tensor,
    ref_rejected_logp: torch.Tensor,
    beta: float,
    loss_type: str = "sigmoid",
) -> torch.Tensor:
    """Per-pair DPO loss from summed sequence log-probabilities.

    h = (log pi(y_w) - log ref(y_w)) - (log pi(y_l) - log ref(y_l))
    sigmoid: -log sigmoid(beta * h)      (Rafailov et al. 2023)
    ipo:     (h - 1 / (2 * beta))^2      (Azar et al. 2023)
    hinge:   max(0, 1 - beta * h)        (SLiC)
    """
    h = (policy_chosen_logp - ref_chosen_logp) - (policy_rejected_logp - ref_rejected_logp)
    if loss_type == "sigmoid":
        return -F.logsigmoid(beta * h)
    if loss_type == "ipo":
        return (h - 1.0 / (2.0 * beta)) ** 2
    if loss_type == "hinge":
        return torch.relu(1.0 - beta * h)
    raise ValueError(f"loss_type must be one of {DPO_LOSS_TYPES}, got {loss_type!r}")


def orpo_loss(chosen_avg_logp: torch.Tensor, rejected_avg_logp: torch.Tensor, lam: float) -> torch.Tensor:
    """Per-pair ORPO loss (Hong et al. 2024) from length-averaged answer log-probabilities a = log P / |y|.

    odds(y) = P / (1 - P) with P = exp(a), so log odds = a - log(1 - exp(a));
    loss = -a_chosen + lam * -log sigmoid(log odds(chosen) - log odds(rejected))
    (the SFT term on the chosen answer plus the odds-ratio term).
    """
    log_odds = (chosen_avg_logp - rejected_avg_logp) - (
        log1mexp(chosen_avg_logp) - log1mexp(rejected_avg_logp)
    )
    return -chosen_avg_logp - lam * F.logsigmoid(log_odds)


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(x)) for x < 0, stable at both ends (Maechler 2012)."""
    return torch.where(x > -0.6931471805599453, torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def simpo_loss(
    chosen_avg_logp: torch.Tensor, rejected_avg_logp: torch.Tensor, beta: float, gamma: float
) -> torch.Tensor:
    """Per-pair SimPO loss (Meng et al. 2024): -log sigmoid(beta * (a_chosen - a_rejected) - gamma), where a is
    the length-averaged answer log-probability and gamma the target reward margin."""
    return -F.logsigmoid(beta * (chosen_avg_logp - rejected_avg_logp) - gamma)


def kto_loss(
    policy_logp: torch.Tensor,
    ref_logp: torch.Tensor,
    desirable: torch.Tensor,
    kl: torch.Tensor | float,
    beta: float,
    desirable_weight: float = 1.0,
    undesirable_weight: float = 1.0,
) -> torch.Tensor:
    """Per-example KTO loss (Ethayarajh et al. 2024) of unpaired examples.

    r = log pi(y|x) - log ref(y|x) (summed over the answer), z = the batch's KL estimate (clamped at 0):
    desirable:   desirable_weight   * (1 - sigmoid(beta * (r - z)))
    undesirable: undesirable_weight * (1 - sigmoid(beta * (z - r)))
    """
    r = policy_logp - ref_logp
    kl = torch.as_tensor(kl, dtype=r.dtype).clamp(min=0)
    good = desirable_weight * (1 - torch.sigmoid(beta * (r - kl)))
    bad = undesirable_weight * (1 - torch.sigmoid(beta * (kl - r)))
    return torch.where(desirable.bool(), good, bad)


def group_advantages(rewards: torch.Tensor, num_generations: int, scale: str = "group") -> torch.Tensor:
    """GRPO's advantages: each reward minus the mean of its group (the num_generations answers to one prompt,
    consecutive in `rewards`), divided by the group's standard deviation (Bessel-corrected, + 1e-4) for
    scale "group", by the whole batch's for "batch", or not at all for "none"."""
    groups = rewards.view(-1, num_generations)
    centred = (groups - groups.mean(dim=1, keepdim=True)).reshape(-1)
    if scale == "none":
        return centred
    std = groups.std(dim=1).repeat_interleave(num_generations) if scale == "group" else rewards.std()
    return centred / (std + 1e-4)


def kl_per_token(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Per-token KL estimate log pi(a) - log ref(a) of the sampled tokens (k1 estimator)."""
    return logprobs - ref_logprobs


def token_rewards(
    scores: torch.Tensor,
    logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor,
    mask: torch.Tensor,
    kl_coef: float,
) -> torch.Tensor:
    """Per-token rewards: -kl_coef * KL at every response token, plus the sequence score at its last token."""
    rewards = -kl_coef * kl_per_token(logprobs, ref_logprobs) * mask
    # index of the last real token per row (mask is 1...1 0...0)
    last = (mask.sum(dim=1).long() - 1).clamp(min=0)
    rewards[torch.arange(rewards.shape[0]), last] += scores
    return rewards


def compute_gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over (batch, T); returns (advantages, returns).

    delta_t = r_t + gamma * V_{t+1} - V_t;  A_t = delta_t + gamma * lam * A_{t+1}; the value after the last
    real token (and any padding) counts as 0. Returns = advantages + values (the value targets).
    """
    values = values * mask
    rewards = rewards * mask
    advantages = torch.zeros_like(rewards)
    next_value = torch.zeros_like(rewards[:, 0])
    next_adv = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        adv = delta + gamma * lam * next_adv
        # padding positions carry nothing back to earlier tokens
        adv = adv * mask[:, t]
        advantages[:, t] = adv
        next_value = values[:, t]
        next_adv = adv
    return advantages, advantages + values


def ppo_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_range: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clipped surrogate: masked mean of max(-A r, -A clip(r, 1-eps, 1+eps)); returns (loss, clip fraction)."""
    ratio = torch.exp(logprobs - old_logprobs)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    clip_frac = masked_mean((clipped > unclipped).float(), mask)
    return loss, clip_frac


def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip_range: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clipped value loss 0.5 * max((V - R)^2, (V_clip - R)^2); returns (loss, value clip fraction)."""
    clipped_values = old_values + torch.clamp(values - old_values, -clip_range, clip_range)
    loss_unclipped = (values - returns) ** 2
    loss_clipped = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(loss_unclipped, loss_clipped), mask)
    clip_frac = masked_mean((loss_clipped > loss_unclipped).float(), mask)
    return loss, clip_frac


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Per-position entropy of the categorical distribution given by logits (..., vocab)."""
    logp = F.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(dim=-1)


def policy_and_reference(
    config: PreferenceTrainingConfig, model: Any, precision: str, stage: str, args: Any
) -> tuple[Any, Any, Any]:
    """(policy, reference model or None, LoRA config for TRL or None) of a DPO or KTO run; the reference is the
    starting policy, held as cheaply as the method allows:

    - LoRA with `adapter_name_or_path` (an SFT adapter): that adapter keeps training; TRL keeps a frozen copy of
      it (an adapter-sized "ref" adapter) as the reference.
    - LoRA from a full model: a new adapter (TRL applies the returned config); the reference is the same model
      with the adapter disabled, so there is no second copy in memory.
    - full fine-tuning: the policy is the fp32 `model` (the SFT adapter, if given, merged in); the reference is
      a second, frozen copy of the same weights, in the run's precision. It loads whole (cast before training);
      under ZeRO-3 TRL's DeepSpeed engine for it shards it then. `args`: the stage's TrainingArguments.
    """
    from common.modeling import load_causal_lm, merge_adapter, torch_dtype, whole_weights
    from common.training import lora_config

    if config.use_lora and config.adapter_name_or_path:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, config.adapter_name_or_path, is_trainable=True)
        logger.info("%s LoRA: training the SFT adapter %s; reference = TRL's frozen copy of it", stage,
                    config.adapter_name_or_path)  # fmt: skip
        return model, None, None
    if config.use_lora:
        peft_config = lora_config(config, model, "CAUSAL_LM", config.model_type)
        logger.info("%s LoRA (%s); reference = the model with the adapter disabled", stage,
                    ", ".join(peft_config.target_modules))  # fmt: skip
        return model, None, peft_config
    if config.adapter_name_or_path:
        model = merge_adapter(model, config.adapter_name_or_path)
    # The same starting weights, merged in fp32 like the policy's, then held in the run's precision: the
    # reference never trains, and autocast rounds the policy's matmul weights the same way.
    with whole_weights(args):
        ref_model = load_causal_lm(
            config.model_name_or_path, torch.float32, trust_remote_code=config.trust_remote_code
        )
    if config.adapter_name_or_path:
        ref_model = merge_adapter(ref_model, config.adapter_name_or_path)
    ref_model = ref_model.to(torch_dtype(precision)).requires_grad_(False).eval()
    logger.info("%s full fine-tuning; reference = a frozen copy of the starting model (%s)", stage, precision)
    return model, ref_model, None
