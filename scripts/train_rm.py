"""Reward modelling: a scalar score head on the SFT model, trained on preference pairs with TRL's
RewardTrainer (loss -log sigmoid(r_chosen - r_rejected)), full or LoRA.

    python scripts/train_rm.py --model_config_file run_config/tiny/rm_config.json
    torchrun --nproc_per_node=8 scripts/train_rm.py --model_config_file run_config/rm_config.json
    deepspeed --num_gpus=8 scripts/train_rm.py --model_config_file run_config/rm_config.json \\
        --deepspeed run_config/deepspeed_config.json                    # ZeRO-2; deepspeed_zero3.json: ZeRO-3

The model is the SFT model with a sequence-classification head (`score`, one output, new and random);
the reward of prompt + answer is that head on the last token that is not padding (`logits[:, 0]` of the
saved model on right-padded prompt + answer ids). Where the tokenizer has no pad token, pad is eos, so
the score is read just before the closing eos: the same rule in training, evaluation and PPO. Pairs are
rendered with the SFT template (common/templates.py: encode_preference_pair), so the reward model reads the
tokens the policy writes. `adapter_name_or_path` (an SFT LoRA adapter) is folded into the weights first.
With --use_lora the trunk gets LoRA and the head trains fully (in fp32, also over a half-precision trunk).

The output folder holds an ordinary sequence-classification model (LoRA merged in) with its tokenizer,
which scripts/train_ppo.py loads with `--reward_model`; LoRA runs also keep the adapter in lora_adapter/.
Beside it: rm_config.json, run_manifest.json, the held-out accuracy, mean margin (r_chosen - r_rejected)
and loss (eval_results.json) and the loss curve.

Under DeepSpeed ZeRO-3 each process holds only a shard of every weight, so the merge cannot read the model
in memory (it once saved empty embedding weights): every process joins in gathering the trained weights
into lora_adapter/ (or, without LoRA, the whole model into the output folder), and process 0 merges that
saved adapter into a freshly loaded base, as for QLoRA.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a file: find `common`

from common.config import ConfigError, config_field, stage_default  # noqa: E402
from common.modeling import (  # noqa: E402
    count_parameters,
    load_causal_lm,
    load_training_model,
    merge_adapter,
    torch_dtype,
    whole_weights,
)
from common.runs import open_run, run_as_script, start_trainer_run  # noqa: E402
from common.training import (  # noqa: E402
    PreferenceTrainingConfig,
    load_preference_pairs,
    load_stage_tokenizer,
    lora_config,
    save_tokenizer_and_curves,
    trainer_arguments,
)

logger = logging.getLogger("train_rm")


@dataclasses.dataclass
class RewardModelConfig(PreferenceTrainingConfig):
    output_dir: str = stage_default("trained_models/tiny-llama-rm")
    center_rewards_coefficient: float | None = config_field(
        None, "add this times mean((r_chosen + r_rejected)^2) to keep rewards centred on 0 (null: off)"
    )

    def check(self) -> None:
        if self.center_rewards_coefficient is not None and self.center_rewards_coefficient < 0:
            raise ConfigError(
                f"center_rewards_coefficient must be >= 0 (or null), got {self.center_rewards_coefficient}"
            )


def main(argv: list[str] | None = None) -> Path:
    # ---- Config and run folder ----------------------------------------------------------------
    config, output_dir, checkpoint, precision, resolved = open_run(RewardModelConfig, argv, __doc__)
    # Heavy imports only now: --help and a refused run folder answer at once.
    from transformers import AutoModelForSequenceClassification
    from trl import RewardConfig, RewardTrainer

    # ---- Data ---------------------------------------------------------------------------------
    tokenizer = load_stage_tokenizer(config, config.adapter_name_or_path)
    train_pairs, dev_pairs, data_files = load_preference_pairs(
        config, config.seed, tokenizer, "reward modelling"
    )
    # RewardTrainer's processed columns are whole sequences: the prompt, then each answer.
    train_pairs, dev_pairs = (
        pairs.map(lambda row: {"chosen_ids": row["prompt_ids"] + row["chosen_ids"],
                               "rejected_ids": row["prompt_ids"] + row["rejected_ids"]},
                  remove_columns=["prompt_ids"])
        for pairs in (train_pairs, dev_pairs)
    )  # fmt: skip

    # ---- Model --------------------------------------------------------------------------------
    # The Trainer's arguments first: under ZeRO-3 each weight then loads straight into its shard (whole only
    # when an SFT adapter is folded in first).
    args = RewardConfig(
        **trainer_arguments(config, config, output_dir, precision, has_eval=len(dev_pairs) > 0),
        max_length=None,  # pairs were already cut to cutoff_len; TRL's filter would drop, not cut
        center_rewards_coefficient=config.center_rewards_coefficient,
        disable_dropout=True,
    )
    # LoRA keeps the frozen trunk in half precision (the adapter and the head train in fp32); full
    # fine-tuning keeps fp32 weights under mixed precision.
    with whole_weights(args, when=bool(config.adapter_name_or_path)):
        model = load_training_model(
            config, precision, config.use_lora, auto_class=AutoModelForSequenceClassification, num_labels=1
        )
        if config.adapter_name_or_path:
            model = merge_adapter(model, config.adapter_name_or_path)
            logger.info("SFT adapter %s folded into the weights", config.adapter_name_or_path)
    load_dtype = model.dtype
    model.config.pad_token_id = tokenizer.pad_token_id  # the head reads the last token that is not padding
    peft_config = None
    if config.use_lora:
        # The head is new: it trains in full (modules_to_save), so it must not also be a LoRA target.
        # ["all"] would make it one: all_linear_names skips only the LM output head, and a
        # sequence-classification model has none, so `score` counts as an ordinary Linear.
        peft_config = lora_config(config, model, "SEQ_CLS", config.model_type, modules_to_save=["score"])
        peft_config.target_modules = sorted(set(peft_config.target_modules) - {"score"})
        logger.info("LoRA targets: %s; the score head trains fully", ", ".join(peft_config.target_modules))
    trainable, total = count_parameters(model)
    logger.info("parameters: %s (before LoRA), precision %s", f"{total:,}", precision)

    # ---- Train --------------------------------------------------------------------------------
    # The run record, W&B, and the guard: checkpoint manifests, SIGTERM/SIGINT stop, save errors.
    guard = start_trainer_run(output_dir, resolved, "rm_config.json", data_files, config, checkpoint,
                              [config.model_name_or_path, config.adapter_name_or_path])  # fmt: skip
    trainer = RewardTrainer(
        model=model,
        args=args,
        train_dataset=train_pairs,
        eval_dataset=dev_pairs if len(dev_pairs) else None,
        processing_class=tokenizer,
        callbacks=guard.callbacks,
        peft_config=peft_config,
    )
    trainable, total = count_parameters(trainer.model)
    logger.info(
        "trainable parameters: %s of %s (%.2f%%)", f"{trainable:,}", f"{total:,}", 100 * trainable / total
    )
    train_result = guard.train(trainer)  # SIGTERM/SIGINT: exits 143/130 here, after saving a checkpoint
    guard.record_train_metrics(trainer, train_result)  # loss and tokens over every resumed session
    trainer.save_state()

    # ---- Evaluate -----------------------------------------------------------------------------
    if len(dev_pairs):
        # TRL adds accuracy (r_chosen > r_rejected) and mean margin, as means over evaluation batches:
        # exact over the held-out pairs when their number is a multiple of the evaluation batch.
        eval_metrics = trainer.evaluate()
        trainer.log_metrics("eval", eval_metrics)
        trainer.save_metrics("eval", eval_metrics)

    # ---- Save ---------------------------------------------------------------------------------
    # PPO needs a plain sequence-classification model: a LoRA run merges its adapter into the weights.
    # ZeRO-3 / FSDP2: no process holds whole weights; all of them gather the trained ones into one saved copy.
    sharded = config.zero_stage() == 3 or bool(config.fsdp_config)
    if sharded:
        from transformers.integrations.deepspeed import unset_hf_deepspeed_config

        trainer.save_model(str(output_dir / "lora_adapter" if config.use_lora else output_dir))
        unset_hf_deepspeed_config()  # else process 0 alone would load the base below into ZeRO-3 shards, and hang
    if trainer.is_world_process_zero():
        model = trainer.accelerator.unwrap_model(trainer.model)
        if config.use_lora:
            if not sharded:
                model.save_pretrained(str(output_dir / "lora_adapter"))
            if config.quantization_bit or sharded:
                # A 4/8-bit trunk cannot take the merge, nor can a ZeRO-3 shard: the saved adapter goes onto the
                # base in full precision (as merge_lora.py does for QLoRA adapters).
                from peft import PeftModel

                base = load_causal_lm(config.model_name_or_path, torch_dtype(precision),
                                      AutoModelForSequenceClassification, config.trust_remote_code, num_labels=1)  # fmt: skip
                base.config.pad_token_id = tokenizer.pad_token_id
                if config.adapter_name_or_path:
                    base = merge_adapter(base, config.adapter_name_or_path)
                model = PeftModel.from_pretrained(base, str(output_dir / "lora_adapter"))
                load_dtype = torch_dtype(precision)
            model = model.merge_and_unload()
        if config.use_lora or not sharded:  # a full ZeRO-3 model was saved whole above
            model.to(load_dtype).save_pretrained(str(output_dir))
        save_tokenizer_and_curves(trainer, tokenizer, output_dir, config.report_to, resolved)
        print(
            f"Reward model and run record saved in {output_dir} (scripts/train_ppo.py --reward_model {output_dir})"
        )
    return output_dir


if __name__ == "__main__":
    run_as_script(main)
