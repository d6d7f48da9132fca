"""Kahneman-Tversky optimisation (KTO) of an SFT policy on unpaired answers, each labelled desirable or
undesirable, with TRL's KTOTrainer.

    python scripts/train_kto.py --model_config_file run_config/tiny/kto_config.json
    torchrun --nproc_per_node=8 scripts/train_kto.py --model_config_file run_config/kto_config.json
    deepspeed --num_gpus=8 scripts/train_kto.py --model_config_file run_config/kto_config.json \\
        --deepspeed run_config/deepspeed_config.json

Data: LLaMA-Factory's KTO format (a `kto_tag` true/false per answer, alpaca or sharegpt; common/data.py:
load_kto_records), or preference pairs, each split into a desirable (chosen) and an undesirable (rejected)
example. Prompts and answers are rendered with the SFT template (common/templates.py: encode_preference_pair,
the answer being the piece SFT trains on), so KTO trains on exactly the tokens SFT taught. The examples are
shuffled once (seeded) and then read in order: KTO's KL estimate pairs each example's prompt with its
neighbour's answer within a batch (TRL's rotation), which needs a fixed order.

Loss per example, with r = log pi(y|x) - log ref(y|x) summed over the answer and z the batch's KL estimate
(mean of log pi - log ref over the mismatched prompt/answer pairs, clamped at 0):
    desirable:   desirable_weight   * (1 - sigmoid(beta (r - z)))
    undesirable: undesirable_weight * (1 - sigmoid(beta (z - r)))      (common/rlhf.py: kto_loss)
With unequal numbers of desirable (D) and undesirable (U) examples, KTO's paper wants
desirable_weight * D / (undesirable_weight * U) between 1 and 4/3; the script logs the ratio.
The implied reward of an example is beta * r (rewards/chosen for the desirable ones, rewards/rejected for the
others; rewards/margins their difference, 0 at the start).

The reference is the starting policy, held as in DPO (common/rlhf.py: policy_and_reference): the model with
the new LoRA adapter disabled, TRL's frozen copy of a continued SFT adapter, or a frozen copy of the model.

The output folder gets the policy (adapter or full model; generate.py and merge_lora.py read it), the
tokenizer, kto_config.json, run_manifest.json, trainer_state.json, the held-out loss and implied rewards
(eval_results.json) and the loss curve; checkpoints resume with --resume_from_checkpoint true.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a file: find `common`

from common.config import ConfigError, config_field, stage_default  # noqa: E402
from common.modeling import load_training_model, whole_weights  # noqa: E402
from common.runs import open_run, run_as_script, start_trainer_run  # noqa: E402
from common.training import (  # noqa: E402
    PolicyPreferenceConfig,
    load_stage_tokenizer,
    save_tokenizer_and_curves,
    train_and_save,
    trainer_arguments,
)

logger = logging.getLogger("train_kto")


@dataclasses.dataclass
class KTOStageConfig(PolicyPreferenceConfig):
    output_dir: str = stage_default("trained_models/tiny-llama-kto")
    desirable_weight: float = config_field(1.0, "weight of the desirable examples' loss")
    undesirable_weight: float = config_field(1.0, "weight of the undesirable examples' loss")

    def check(self) -> None:
        if self.desirable_weight <= 0 or self.undesirable_weight <= 0:
            raise ConfigError("desirable_weight and undesirable_weight must be > 0")
        if self.per_device_train_batch_size < 2:
            raise ConfigError("per_device_train_batch_size must be at least 2: KTO's KL estimate pairs each example's "
                              "prompt with another example's answer in the same batch")  # fmt: skip
        if self.group_by_length:
            raise ConfigError("group_by_length: KTO reads its examples in one fixed (seeded, shuffled) order")


# ---- Data ------------------------------------------------------------------------------------------


def unpaired_examples(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """(messages, system, completion, label) examples: KTO records as they are, preference pairs split in two."""
    from common.data import DataError

    examples = []
    for record in records:
        base = {
            "messages": record["messages"],
            "system": record.get("system"),
            "_where": record.get("_where"),
        }
        if "label" in record:
            examples.append(base | {"completion": record["completion"], "label": bool(record["label"])})
        elif "chosen" in record:
            examples.append(base | {"completion": record["chosen"], "label": True})
            examples.append(base | {"completion": record["rejected"], "label": False})
        else:
            raise DataError(f"dataset {record.get('_source')!r} has neither labelled answers (kto_tag) nor "
                            "chosen/rejected pairs; KTO needs one of them")  # fmt: skip
    return examples


def load_kto_examples(config: KTOStageConfig, tokenizer: Any) -> tuple[Any, Any, list[str]]:
    """(train, held-out) datasets of prompt_ids / completion_ids / label in one seeded random order, and the data
    files read (for the run manifest)."""
    from datasets import Dataset

    from common.data import DataError, load_mixed, resolve_specs, spec_files
    from common.templates import TemplateError, encode_preference_pair, get_template
    from common.training import split_pairs

    specs = resolve_specs(config.dataset, config.data_path, config.dataset_dir)
    records = load_mixed(specs, config.dataset_dir, config.skip_bad_records, config.max_samples, config.seed)
    template = get_template(config.template)
    rows, dropped = [], 0
    for example in unpaired_examples(records):
        try:  # the answer as SFT renders it; the same cut rule as RM and DPO (the answer given twice)
            ids = encode_preference_pair(template, tokenizer, example["messages"], example["completion"],
                                         example["completion"], example["system"], config.cutoff_len)  # fmt: skip
        except TemplateError as err:
            raise DataError(f"{example['_where']}: template {config.template!r}: {err}") from None
        if ids is None:
            dropped += 1
            continue
        rows.append(
            {"prompt_ids": ids["prompt_ids"], "completion_ids": ids["chosen_ids"], "label": example["label"]}
        )
    if dropped:
        logger.warning("dropped %d examples with no answer token left after cutting to cutoff_len=%d",
                       dropped, config.cutoff_len)  # fmt: skip
    if not rows:
        raise DataError(f"no KTO example left after cutting to cutoff_len={config.cutoff_len}")
    random.Random(config.seed).shuffle(rows)  # split pairs apart; the Trainer then reads this order as it is
    train, dev = split_pairs(Dataset.from_list(rows), config, config.seed)
    desirable = sum(train["label"])
    logger.info("KTO examples: %d train (%d desirable, %d undesirable; weighted ratio %.2f), %d held out "
                "(template %s)", len(train), desirable, len(train) - desirable,
                config.desirable_weight * desirable / max(1.0, config.undesirable_weight * (len(train) - desirable)),
                len(dev), config.template)  # fmt: skip
    return train, dev, spec_files(specs, config.dataset_dir)


def pretokenised_kto_trainer() -> Any:
    """KTOTrainer that takes our template-rendered prompt_ids / completion_ids as they are (TRL would re-render
    text) and adds only its KL pairing: within each batch of per_device_train_batch_size examples, example i
    is also read with the answer of example i - 1 (the first with the last's)."""
    from trl import KTOTrainer

    class PretokenisedKTOTrainer(KTOTrainer):
        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            if "prompt_ids" not in dataset.column_names:
                return super()._prepare_dataset(dataset, processing_class, args, dataset_name)
            if not self.calculate_KL:
                return dataset

            def rotate(batch):
                return {"KL_completion_ids": batch["completion_ids"][-1:] + batch["completion_ids"][:-1]}

            return dataset.map(rotate, batched=True, batch_size=args.per_device_train_batch_size)

    return PretokenisedKTOTrainer


def main(argv: list[str] | None = None) -> Path:
    # ---- Config and run folder ----------------------------------------------------------------
    config, output_dir, checkpoint, precision, resolved = open_run(KTOStageConfig, argv, __doc__)
    # Heavy imports only now: --help and a refused run folder answer at once.
    from trl import KTOConfig

    from common.rlhf import policy_and_reference

    # ---- Data ---------------------------------------------------------------------------------
    tokenizer = load_stage_tokenizer(config, config.adapter_name_or_path)
    train, dev, data_files = load_kto_examples(config, tokenizer)

    # ---- Model and reference --------------------------------------------------------------------
    # The Trainer's arguments first: under ZeRO-3 the policy then loads straight into its shards (whole only when
    # an SFT adapter is folded in or trained on).
    train_args = trainer_arguments(config, config, output_dir, precision, has_eval=len(dev) > 0)
    train_args.pop("group_by_length", None)
    train_args["train_sampling_strategy"] = "sequential"  # the shuffled order above; the KL pairing needs it
    args = KTOConfig(
        **train_args,
        beta=config.beta,
        desirable_weight=config.desirable_weight,
        undesirable_weight=config.undesirable_weight,
        max_length=None,  # examples were already cut to cutoff_len by our own rule
        disable_dropout=True,
    )
    with whole_weights(args, when=bool(config.adapter_name_or_path)):
        model = load_training_model(config, precision, config.use_lora)
    model, ref_model, peft_config = policy_and_reference(config, model, precision, "KTO", args)

    # ---- Train --------------------------------------------------------------------------------
    # The run record, W&B, and the guard: checkpoint manifests, SIGTERM/SIGINT stop, save errors.
    guard = start_trainer_run(output_dir, resolved, "kto_config.json", data_files, config, checkpoint,
                              [config.model_name_or_path, config.adapter_name_or_path])  # fmt: skip
    trainer = pretokenised_kto_trainer()(
        model=model,
        ref_model=ref_model,
        args=args,
        train_dataset=train,
        eval_dataset=dev if len(dev) else None,
        processing_class=tokenizer,
        callbacks=guard.callbacks,
        peft_config=peft_config,
    )
    train_and_save(trainer, guard, output_dir, precision)

    # ---- Evaluate -----------------------------------------------------------------------------
    if len(dev):
        eval_metrics = trainer.evaluate()  # rewards/margins starts at 0: the policy begins as its reference
        trainer.log_metrics("eval", eval_metrics)
        trainer.save_metrics("eval", eval_metrics)
    save_tokenizer_and_curves(trainer, tokenizer, output_dir, config.report_to, resolved)
    if trainer.is_world_process_zero():
        print(f"KTO {'adapter' if config.use_lora else 'model'} and run record saved in {output_dir}")
    return output_dir


if __name__ == "__main__":
    run_as_script(main)
