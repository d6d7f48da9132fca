"""Direct preference optimisation (DPO, with TRL's DPOTrainer) and the reference-free ORPO and SimPO of an SFT
policy on preference pairs.

    python scripts/train_dpo.py --model_config_file run_config/tiny/dpo_config.json
    torchrun --nproc_per_node=8 scripts/train_dpo.py --model_config_file run_config/dpo_config.json
    deepspeed --num_gpus=2 scripts/train_dpo.py --model_config_file run_config/tiny/dpo_config.json \\
        --deepspeed run_config/tiny/deepspeed_config.json
    deepspeed --num_gpus=8 scripts/train_dpo.py --model_config_file run_config/dpo_config.json \\
        --deepspeed run_config/deepspeed_config.json

`beta` and `loss_type` choose the objective on h = (log pi(chosen) - log ref(chosen)) - (log pi(rejected)
- log ref(rejected)), log-probabilities summed over the answer tokens: sigmoid -log sigmoid(beta h) (DPO),
hinge max(0, 1 - beta h) (SLiC), ipo (h' - 1/(2 beta))^2, where TRL's h' divides each answer's log-ratio
by its length (common/rlhf.py: dpo_loss is the same on plain tensors, with the unnormalised h for ipo).
Two reference-free losses read only the policy's length-averaged answer log-probabilities a = log pi / |y|
(no reference model is loaded or kept; our own small Trainer below, not TRL's DPOTrainer, runs them):
- orpo (ORPO): -a(chosen) + beta * -log sigmoid(log odds(chosen) - log odds(rejected)), odds = P/(1-P),
  P = exp(a); beta is ORPO's lambda (0.1 to 1), the SFT term keeps the chosen answers likely.
- simpo (SimPO): -log sigmoid(beta (a(chosen) - a(rejected)) - simpo_gamma); beta 2 to 10, simpo_gamma the
  target margin (0.5 to 1.5).
(common/rlhf.py: orpo_loss, simpo_loss). Their rewards/* metrics are beta * a, as in TRL's ORPO and CPO.
Pairs are rendered with the SFT template (common/templates.py: encode_preference_pair), so DPO trains on
exactly the tokens SFT taught.

For sigmoid, ipo and hinge the reference is the starting policy, held as cheaply as the method allows
(common/rlhf.py: policy_and_reference, which KTO shares):
- full fine-tuning (use_lora false): the policy is the fp32 model (`adapter_name_or_path`, if given,
  merged in); the reference is a second, frozen copy of the same weights, in the run's precision.
- LoRA from a full SFT model (no `adapter_name_or_path`): a new adapter trains; the reference is the same
  model with the adapter disabled, so there is no second copy in memory.
- LoRA with `adapter_name_or_path` (an SFT adapter): that adapter keeps training; TRL keeps a frozen copy
  of it (an adapter-sized "ref" adapter) as the reference, so the reference is the SFT policy.

The output folder gets the policy (the trained adapter, or the full model; generate.py and merge_lora.py
read it), the tokenizer, dpo_config.json, run_manifest.json, trainer_state.json, the held-out loss, reward
margins and accuracies (eval_results.json) and the loss curve (training_loss.png).
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a file: find `common`

# `training.` marks the steps DPO shares with the other Trainer stages, among this file's own helpers.
from common import training  # noqa: E402
from common.config import ConfigError, config_field, stage_default  # noqa: E402
from common.modeling import load_training_model, whole_weights  # noqa: E402
from common.runs import RunError, open_run, run_as_script, start_trainer_run  # noqa: E402

logger = logging.getLogger("train_dpo")


@dataclasses.dataclass
class DPOStageConfig(training.PolicyPreferenceConfig):
    output_dir: str = stage_default("trained_models/tiny-llama-dpo")
    loss_type: str = config_field(
        "sigmoid", "sigmoid (DPO), ipo, hinge (against a reference); orpo or simpo (reference-free)"
    )
    simpo_gamma: float = config_field(0.5, "simpo: target margin gamma of beta * (a_chosen - a_rejected)")

    def check(self) -> None:
        from common.rlhf import DPO_LOSS_TYPES, REFERENCE_FREE_LOSS_TYPES

        choices = DPO_LOSS_TYPES + REFERENCE_FREE_LOSS_TYPES
        if self.loss_type not in choices:
            raise ConfigError(f"loss_type must be one of {', '.join(choices)}, got {self.loss_type!r}")
        if self.simpo_gamma < 0:
            raise ConfigError(f"simpo_gamma must be >= 0, got {self.simpo_gamma}")

    @property
    def reference_free(self) -> bool:
        from common.rlhf import REFERENCE_FREE_LOSS_TYPES

        return self.loss_type in REFERENCE_FREE_LOSS_TYPES


def pretokenised_dpo_trainer() -> Any:
    """DPOTrainer that takes our template-rendered prompt_ids / chosen_ids / rejected_ids as they are
    (TRL 1.16 re-renders every dataset from text, which would lose the SFT template's exact tokens)."""
    from trl import DPOTrainer

    class PretokenisedDPOTrainer(DPOTrainer):
        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            if {"prompt_ids", "chosen_ids", "rejected_ids"} <= set(dataset.column_names):
                return dataset
            return super()._prepare_dataset(dataset, processing_class, args, dataset_name)

    return PretokenisedDPOTrainer


def reference_free_trainer() -> Any:
    """A Trainer for ORPO and SimPO: one forward pass over [chosen; rejected] rows (TRL's preference collator
    pads them), the loss from common/rlhf.py, and TRL-style rewards/* and logps/* metrics. No reference model."""
    from collections import defaultdict

    import torch
    from transformers import Trainer

    from common.rlhf import orpo_loss, simpo_loss

    class ReferenceFreePreferenceTrainer(Trainer):
        def __init__(
            self, *args: Any, loss_type: str, beta: float, simpo_gamma: float, **kwargs: Any
        ) -> None:
            super().__init__(*args, **kwargs)
            self.loss_type, self.beta, self.simpo_gamma = loss_type, beta, simpo_gamma
            self.model_accepts_loss_kwargs = False  # the loss is a mean over pairs: accumulation divides it
            self._metrics: dict[str, dict[str, list[float]]] = {
                "train": defaultdict(list),
                "eval": defaultdict(list),
            }

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            ids, answer = inputs["input_ids"], inputs["completion_mask"][:, 1:].float()
            logits = model(input_ids=ids, attention_mask=inputs["attention_mask"], use_cache=False).logits
            logits = logits[:, :-1].float()
            token_logps = logits.gather(-1, ids[:, 1:, None])[..., 0] - logits.logsumexp(-1)
            summed = (token_logps * answer).sum(1)
            averaged = summed / answer.sum(1).clamp(min=1)
            chosen, rejected = averaged.chunk(2)
            if self.loss_type == "orpo":
                losses = orpo_loss(chosen, rejected, self.beta)
            else:
                losses = simpo_loss(chosen, rejected, self.beta, self.simpo_gamma)
            self._record(chosen.detach(), rejected.detach(), summed.detach().chunk(2))
            loss = losses.mean()
            return (loss, {"logits": logits}) if return_outputs else loss

        def _record(self, chosen: Any, rejected: Any, summed: tuple[Any, Any]) -> None:
            gather = self.accelerator.gather_for_metrics
            mode = "train" if self.model.training else "eval"
            chosen_reward, rejected_reward = gather(self.beta * chosen), gather(self.beta * rejected)
            values = {
                "rewards/chosen": chosen_reward.mean(),
                "rewards/rejected": rejected_reward.mean(),
                "rewards/margins": (chosen_reward - rejected_reward).mean(),
                "rewards/accuracies": (chosen_reward > rejected_reward).float().mean(),
                "logps/chosen": gather(summed[0]).mean(),
                "logps/rejected": gather(summed[1]).mean(),
            }
            for name, value in values.items():
                self._metrics[mode][name].append(value.item())

        def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
            inputs = self._prepare_inputs(inputs)
            with torch.no_grad(), self.compute_loss_context_manager():
                loss = self.compute_loss(model, inputs)
            return loss.detach(), None, None

        def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
            mode = "train" if self.model.training else "eval"
            prefix = "eval_" if mode == "eval" else ""
            logs |= {prefix + k: sum(v) / len(v) for k, v in self._metrics[mode].items() if v}
            self._metrics[mode].clear()
            super().log(logs, start_time)

    return ReferenceFreePreferenceTrainer


def reference_free_policy(config: DPOStageConfig, model: Any) -> Any:
    """The policy of an ORPO / SimPO run: the SFT adapter trained further, a new LoRA adapter, or the full model
    (an SFT adapter merged in); dropout off, as DPO runs it."""
    from peft import PeftModel, get_peft_model
    from trl.trainer.utils import disable_dropout_in_model

    from common.modeling import merge_adapter

    if config.use_lora and config.adapter_name_or_path:
        model = PeftModel.from_pretrained(model, config.adapter_name_or_path, is_trainable=True)
        logger.info("%s: LoRA, training the SFT adapter %s", config.loss_type, config.adapter_name_or_path)
    elif config.use_lora:
        lora = training.lora_config(config, model, "CAUSAL_LM", config.model_type)
        model = get_peft_model(model, lora)
        logger.info("%s: LoRA (%s)", config.loss_type, ", ".join(lora.target_modules))
    elif config.adapter_name_or_path:
        model = merge_adapter(model, config.adapter_name_or_path)
    disable_dropout_in_model(model)
    logger.info("%s is reference-free: no reference model is loaded", config.loss_type)
    return model


def main(argv: list[str] | None = None) -> Path:
    # ---- Config and run folder ----------------------------------------------------------------
    config, output_dir, checkpoint, precision, resolved = open_run(DPOStageConfig, argv, __doc__)
    # Heavy imports only now: --help and a refused run folder answer at once.
    from trl import DPOConfig

    from common.rlhf import policy_and_reference

    # ---- Data ---------------------------------------------------------------------------------
    tokenizer = training.load_stage_tokenizer(config, config.adapter_name_or_path)
    train_pairs, dev_pairs, data_files = training.load_preference_pairs(config, config.seed, tokenizer, "DPO")

    # ---- Model and reference --------------------------------------------------------------------
    # The Trainer's arguments first: under ZeRO-3 the policy then loads straight into its shards (whole only when
    # an SFT adapter is folded in or trained on).
    has_eval = len(dev_pairs) > 0
    train_args = training.trainer_arguments(config, config, output_dir, precision, has_eval=has_eval)
    if config.reference_free:
        from transformers import TrainingArguments
        from trl.trainer.dpo_trainer import DataCollatorForPreference

        # The collator reads our id columns, which are no arguments of the model's forward.
        args = TrainingArguments(**train_args, remove_unused_columns=False)
    else:
        args = DPOConfig(
            **train_args,
            beta=config.beta,
            loss_type=[config.loss_type],
            max_length=None,  # pairs were already cut to cutoff_len by our own rule; the collator must not cut
            disable_dropout=True,
        )
    with whole_weights(args, when=bool(config.adapter_name_or_path)):
        model = load_training_model(config, precision, config.use_lora)
    if config.reference_free:
        model, ref_model, peft_config = reference_free_policy(config, model), None, None
    else:
        model, ref_model, peft_config = policy_and_reference(config, model, precision, "DPO", args)

    # ---- Train --------------------------------------------------------------------------------
    # The run record, W&B, and the guard: checkpoint manifests, SIGTERM/SIGINT stop, save errors.
    guard = start_trainer_run(output_dir, resolved, "dpo_config.json", data_files, config, checkpoint,
                              [config.model_name_or_path, config.adapter_name_or_path])  # fmt: skip
    data = dict(train_dataset=train_pairs, eval_dataset=dev_pairs if len(dev_pairs) else None)
    if config.reference_free:
        trainer = reference_free_trainer()(
            model=model, args=args, **data, processing_class=tokenizer, callbacks=guard.callbacks,
            data_collator=DataCollatorForPreference(pad_token_id=tokenizer.pad_token_id),
            loss_type=config.loss_type, beta=config.beta, simpo_gamma=config.simpo_gamma,
        )  # fmt: skip
    else:
        trainer = pretokenised_dpo_trainer()(model=model, ref_model=ref_model, args=args, **data,
                                             processing_class=tokenizer, callbacks=guard.callbacks,
                                             peft_config=peft_config)  # fmt: skip
    if config.use_lora and getattr(trainer, "ref_model", None) is not None:
        raise RunError("LoRA DPO unexpectedly built a second reference model")  # the memory promise above
    training.train_and_save(trainer, guard, output_dir, precision)

    # ---- Evaluate -----------------------------------------------------------------------------
    if len(dev_pairs):
        # DPO's rewards/margins starts at 0 (the policy begins as its reference); ORPO/SimPO's at beta * a.
        eval_metrics = trainer.evaluate()
        trainer.log_metrics("eval", eval_metrics)
        trainer.save_metrics("eval", eval_metrics)
    training.save_tokenizer_and_curves(trainer, tokenizer, output_dir, config.report_to, resolved)
    if trainer.is_world_process_zero():
        method = {"orpo": "ORPO", "simpo": "SimPO"}.get(config.loss_type, "DPO")
        print(f"{method} {'adapter' if config.use_lora else 'model'} and run record saved in {output_dir}")
    return output_dir


if __name__ == "__main__":
    run_as_script(main)
