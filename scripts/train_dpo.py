"""Direct preference optimisation (DPO) of an SFT policy on preference pairs, with TRL's DPOTrainer.

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
Pairs are rendered with the SFT template (common/templates.py: encode_preference_pair), so DPO trains on
exactly the tokens SFT taught.

The reference is the starting policy, held as cheaply as the method allows:
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
import shutil
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a file: find `common`

from common.config import RUN_CONFIG_FILES, ConfigError, config_field, parse_config, stage_default  # noqa: E402
from common.runs import RunError, run_as_script, setup_logging  # noqa: E402
from common.training import PreferenceTrainingConfig  # noqa: E402

logger = logging.getLogger("train_dpo")


@dataclasses.dataclass
class DPOStageConfig(PreferenceTrainingConfig):
    output_dir: str = stage_default("trained_models/tiny-llama-dpo")
    learning_rate: float = stage_default(5e-6)  # DPO wants it small for full fine-tuning
    beta: float = config_field(0.1, "strength of the tie to the reference policy (larger: closer to it)")
    loss_type: str = config_field("sigmoid", "sigmoid (DPO), ipo or hinge")

    def check(self) -> None:
        from common.rlhf import DPO_LOSS_TYPES

        if self.loss_type not in DPO_LOSS_TYPES:
            raise ConfigError(f"loss_type must be one of {', '.join(DPO_LOSS_TYPES)}, got {self.loss_type!r}")
        if self.beta <= 0:
            raise ConfigError(f"beta must be > 0, got {self.beta}")


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


def main(argv: list[str] | None = None) -> Path:
    setup_logging()
    # ---- Config -------------------------------------------------------------------------------
    config = parse_config(DPOStageConfig, argv, description=__doc__, config_file_flags=RUN_CONFIG_FILES)
    import torch
    from transformers import set_seed
    from trl import DPOConfig

    from common.modeling import (
        count_parameters,
        load_causal_lm,
        load_training_model,
        merge_adapter,
        torch_dtype,
    )
    from common.runs import log_config_to_wandb, prepare_run_dir, start_trainer_run
    from common.training import (
        load_preference_pairs,
        load_stage_tokenizer,
        lora_config,
        resolved_settings,
        trainer_arguments,
    )

    output_dir, checkpoint = prepare_run_dir(config)
    precision = config.resolved_precision()
    resolved = resolved_settings(config, precision)
    set_seed(config.seed)

    # ---- Data ---------------------------------------------------------------------------------
    tokenizer = load_stage_tokenizer(config.model_name_or_path, config.adapter_name_or_path)
    train_pairs, dev_pairs, data_files = load_preference_pairs(config, config.seed, tokenizer, "DPO")

    # ---- Model and reference --------------------------------------------------------------------
    model = load_training_model(config, precision, config.use_lora)
    ref_model, peft_config = None, None
    if config.use_lora and config.adapter_name_or_path:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, config.adapter_name_or_path, is_trainable=True)
        logger.info("LoRA: training the SFT adapter %s; reference = TRL's frozen copy of it",
                    config.adapter_name_or_path)  # fmt: skip
    elif config.use_lora:
        peft_config = lora_config(config, model, "CAUSAL_LM", config.model_type)
        logger.info("LoRA (%s); reference = the model with the adapter disabled",
                    ", ".join(peft_config.target_modules))  # fmt: skip
    else:
        if config.adapter_name_or_path:
            model = merge_adapter(model, config.adapter_name_or_path)
        # The same starting weights, merged in fp32 like the policy's, then held in the run's precision: the
        # reference never trains, and autocast rounds the policy's matmul weights the same way.
        ref_model = load_causal_lm(config.model_name_or_path, dtype=torch.float32)
        if config.adapter_name_or_path:
            ref_model = merge_adapter(ref_model, config.adapter_name_or_path)
        ref_model = ref_model.to(torch_dtype(precision)).requires_grad_(False).eval()
        logger.info("full fine-tuning; reference = a frozen copy of the starting model (%s)", precision)

    # ---- Train --------------------------------------------------------------------------------
    args = DPOConfig(
        **trainer_arguments(config, config, output_dir, precision, has_eval=len(dev_pairs) > 0),
        beta=config.beta,
        loss_type=[config.loss_type],
        max_length=None,  # pairs were already cut to cutoff_len by our own rule; the collator must not cut again
        disable_dropout=True,
    )
    # The run record, W&B, and the guard: checkpoint manifests, SIGTERM/SIGINT stop, save errors.
    guard = start_trainer_run(output_dir, resolved, "dpo_config.json", data_files, config, checkpoint,
                              [config.model_name_or_path, config.adapter_name_or_path])  # fmt: skip
    trainer = pretokenised_dpo_trainer()(
        model=model,
        ref_model=ref_model,
        args=args,
        train_dataset=train_pairs,
        eval_dataset=dev_pairs if len(dev_pairs) else None,
        processing_class=tokenizer,
        callbacks=guard.callbacks,
        peft_config=peft_config,
    )
    if config.use_lora and trainer.ref_model is not None:
        raise RunError("LoRA DPO unexpectedly built a second reference model")  # the memory promise above
    trainable, total = count_parameters(trainer.model)
    logger.info("trainable parameters: %s of %s (%.2f%%), precision %s", f"{trainable:,}", f"{total:,}",
                100 * trainable / total, precision)  # fmt: skip
    train_result = guard.train(trainer)  # SIGTERM/SIGINT: exits 143/130 here, after saving a checkpoint

    # ---- Save ---------------------------------------------------------------------------------
    trainer.save_model(str(output_dir))
    if trainer.is_world_process_zero() and "ref" in getattr(trainer.model, "peft_config", {}):
        # PEFT saves every adapter it holds; TRL's frozen "ref" copy is only the starting adapter
        # (adapter_name_or_path), and beside the policy it would read as a second result.
        shutil.rmtree(output_dir / "ref")
    trainer.save_state()
    metrics = dict(train_result.metrics)
    metrics |= guard.whole_run_metrics(trainer.state, metrics)  # loss and tokens over every resumed session
    if torch.cuda.is_available():
        metrics["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)

    # ---- Evaluate -----------------------------------------------------------------------------
    if len(dev_pairs):
        eval_metrics = trainer.evaluate()  # rewards/margins starts at 0: the policy begins as its reference
        trainer.log_metrics("eval", eval_metrics)
        trainer.save_metrics("eval", eval_metrics)
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(str(output_dir))
        from common.report import plot_loss

        logger.info("loss curves saved to %s", plot_loss(output_dir))
        log_config_to_wandb(config.report_to, resolved)
        print(f"DPO {'adapter' if config.use_lora else 'model'} and run record saved in {output_dir}")
    return output_dir


if __name__ == "__main__":
    run_as_script(main)
