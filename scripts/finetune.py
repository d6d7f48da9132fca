"""Supervised fine-tuning (SFT) of a causal LM on BELLE/alpaca instruction data.

Full fine-tuning, LoRA (`--use_lora`) or freeze (`--trainable_layers N`: only the last N blocks learn),
with the transformers Trainer. The same file runs under every launcher, as in BELLE:

    python scripts/finetune.py --model_config_file run_config/tiny/Llama_config.json
    torchrun --nproc_per_node=8 scripts/finetune.py --model_config_file run_config/Llama_config.json \\
        --lora_hyperparams_file run_config/lora_hyperparams_llama.json --use_lora
    deepspeed --num_gpus=8 scripts/finetune.py --model_config_file run_config/Bloom_config.json \\
        --deepspeed run_config/deepspeed_config.json

Settings: defaults below < `--model_config_file` < `--lora_hyperparams_file` < flags (`--help`).
The output folder gets the resolved config (`finetune_config.json`), `run_manifest.json`,
checkpoints, and at the end the model (or LoRA adapter) with its tokenizer.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a file: find `common`

from common.config import ConfigError, config_field, stage_default  # noqa: E402
from common.data import DataError, load_tokenised, resolve_specs, spec_files, split_train_dev  # noqa: E402
from common.modeling import (  # noqa: E402
    compile_decoder_layers,
    count_parameters,
    freeze_all_but_last_layers,
    load_tokenizer,
    load_training_model,
)
from common.packing import PackedCollator, check_model_supports_packing, pack_examples  # noqa: E402
from common.runs import open_run, run_as_script, start_trainer_run  # noqa: E402
from common.settings import DataSettings, LoraSettings, ModelSettings, RunSettings, TrainSettings  # noqa: E402
from common.templates import chat_template_mismatch  # noqa: E402
from common.training import (  # noqa: E402
    causal_lm_trainer_class,
    liger_arguments,
    lora_config,
    save_tokenizer_and_curves,
    trainer_arguments,
)

logger = logging.getLogger("finetune")


@dataclasses.dataclass
class FinetuneConfig(RunSettings, LoraSettings, TrainSettings, DataSettings, ModelSettings):
    """The shared groups (common/settings.py) plus the keys of SFT alone."""

    preprocessing_num_workers: int | None = config_field(None, "processes for tokenisation (null: one)")
    cache_dir: str | None = config_field(
        ".cache/tokenised", "reuse tokenised data from an identical earlier run (null: no cache)"
    )
    train_on_inputs: bool = config_field(
        False, "also train on the prompt tokens (default: labels only on the response)"
    )
    trainable_layers: int = config_field(
        0, "freeze fine-tuning: train only the last N decoder layers (0: train all)"
    )
    num_epochs: float = stage_default(2.0)
    learning_rate: float = stage_default(2e-5)
    warmup_steps: int = stage_default(10)

    def check(self) -> None:
        if self.use_lora and self.trainable_layers:
            raise ConfigError("use_lora and trainable_layers are two different methods; choose one")


def main(argv: list[str] | None = None) -> Path:
    # ---- Config and run folder ----------------------------------------------------------------
    config, output_dir, checkpoint, precision, resolved = open_run(FinetuneConfig, argv, __doc__)
    # Heavy imports only now: --help and a refused run folder answer at once.
    import torch
    from transformers import DataCollatorForSeq2Seq, TrainingArguments

    from common.chunked_loss import add_chunked_loss, supports_chunked_loss

    # ---- Data ---------------------------------------------------------------------------------
    # Records of any supported format are normalised to conversations, rendered with the template and
    # tokenised in batches; an identical earlier run's result is reused from cache_dir.
    tokenizer = load_tokenizer(config.model_name_or_path, trust_remote_code=config.trust_remote_code)
    if mismatch := chat_template_mismatch(tokenizer, config.template):  # a chat model trained off its format
        logger.warning("%s; details: python -m common.templates check --model %s --template %s", mismatch,
                       config.model_name_or_path, config.template)  # fmt: skip
    specs = resolve_specs(config.dataset, config.data_path, config.dataset_dir)
    data_files = spec_files(specs, config.dataset_dir) + [s.hf_hub_url for s in specs if s.hf_hub_url]
    tokenised = load_tokenised(specs, tokenizer, config.template, config.cutoff_len,
                               dataset_dir=config.dataset_dir, train_on_inputs=config.train_on_inputs,
                               max_samples=config.max_samples, seed=config.seed,
                               skip_bad_records=config.skip_bad_records,
                               num_proc=config.preprocessing_num_workers,
                               cache_dir=config.cache_dir)  # fmt: skip
    dev_size = min(config.val_set_size, int(len(tokenised) * config.val_set_rate))
    train_index, dev_index = split_train_dev(list(range(len(tokenised))), dev_size, config.seed)
    kept = [len(ids) > 0 for ids in tokenised["input_ids"]]  # empty: no answer token fits in cutoff_len
    if not all(kept):
        logger.warning("dropped %d examples with no answer token left after cutting to cutoff_len=%d",
                       kept.count(False), config.cutoff_len)  # fmt: skip
    train_examples = tokenised.select([i for i in train_index if kept[i]])
    dev_examples = tokenised.select([i for i in dev_index if kept[i]])
    data_name = config.dataset or config.data_path
    if not len(train_examples):
        raise DataError(f"{data_name}: no training example left after cutting to cutoff_len")
    logger.info("examples: %d train, %d held out, from %s (template %s)", len(train_examples),
                len(dev_examples), data_name, config.template)  # fmt: skip
    if config.packing:
        real_tokens = sum(len(ids) for ids in train_examples["input_ids"])
        train_examples = pack_examples(train_examples, config.cutoff_len)
        dev_examples = pack_examples(dev_examples, config.cutoff_len) if len(dev_examples) else dev_examples
        fill = real_tokens / (len(train_examples) * config.cutoff_len)
        resolved["_resolved"] |= {"packed_rows": len(train_examples), "packing_fill": round(fill, 4)}
        logger.info("packing: %d train rows of up to %d tokens, %.1f%% filled; batch sizes count rows",
                    len(train_examples), config.cutoff_len, 100 * fill)  # fmt: skip

    # ---- Model --------------------------------------------------------------------------------
    # The Trainer's arguments come first: under a ZeRO-3 config they make from_pretrained place each weight
    # straight into its shard (deepspeed.zero.Init), so no process ever holds the whole model.
    use_gpu = torch.cuda.is_available()
    args = TrainingArguments(
        **trainer_arguments(config, config, output_dir, precision, has_eval=len(dev_examples) > 0),
        include_num_input_tokens_seen="non_padding",
        **liger_arguments(config.use_liger_kernel, config.torch_compile),
    )
    model = load_training_model(config, precision, config.use_lora, packing=config.packing)
    model.config.use_cache = False  # the KV cache is for generation; in training it only costs memory
    if config.packing:
        check_model_supports_packing(model)
    chunked_loss = not config.use_liger_kernel and supports_chunked_loss(model)
    if chunked_loss:
        add_chunked_loss(model)  # liger brings its own fused head and loss
    resolved["_resolved"] |= {
        "attn_implementation": model.config._attn_implementation,
        "loss": "liger fused linear cross-entropy" if config.use_liger_kernel else
                "chunked" if chunked_loss else "model's own",
    }  # fmt: skip
    if config.use_lora:
        from peft import get_peft_model

        lora = lora_config(config, model, "CAUSAL_LM", config.model_type)
        logger.info("LoRA targets: %s", ", ".join(lora.target_modules))
        model = get_peft_model(model, lora)
    elif config.trainable_layers:
        names = freeze_all_but_last_layers(model, config.trainable_layers)
        logger.info("freeze fine-tuning: %d parameter tensors train, e.g. %s", len(names), names[0])
    if config.torch_compile:
        logger.info("torch.compile: %d decoder blocks, one by one (the head and loss stay eager)",
                    compile_decoder_layers(model))  # fmt: skip
    trainable, total = count_parameters(model)
    logger.info("parameters: %s trainable of %s (%.2f%%), precision %s", f"{trainable:,}", f"{total:,}",
                100 * trainable / total, precision)  # fmt: skip

    # ---- Train --------------------------------------------------------------------------------
    # Packed rows are padded to cutoff_len on a GPU: one shape, so compiled kernels (flex attention) compile once.
    collator = (
        PackedCollator(tokenizer.pad_token_id, row_length=config.cutoff_len if use_gpu else None)
        if config.packing
        else DataCollatorForSeq2Seq(tokenizer, pad_to_multiple_of=8 if use_gpu else None)
    )
    # The run record, W&B, and the guard: checkpoint manifests, SIGTERM/SIGINT stop, save errors.
    guard = start_trainer_run(output_dir, resolved, "finetune_config.json", data_files, config, checkpoint,
                              [config.model_name_or_path])  # fmt: skip
    trainer = causal_lm_trainer_class()(
        model=model,
        args=args,
        train_dataset=train_examples,
        eval_dataset=dev_examples if len(dev_examples) else None,
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=guard.callbacks,
    )
    train_result = guard.train(trainer)  # SIGTERM/SIGINT: exits 143/130 here, after saving a checkpoint

    # ---- Save ---------------------------------------------------------------------------------
    trainer.save_model(str(output_dir))  # the adapter alone for LoRA; the full model otherwise
    trainer.save_state()
    guard.record_train_metrics(trainer, train_result)  # loss and tokens over every resumed session, speed
    save_tokenizer_and_curves(trainer, tokenizer, output_dir, config.report_to, resolved)

    # ---- Evaluate -----------------------------------------------------------------------------
    if len(dev_examples):
        eval_metrics = trainer.evaluate()
        eval_metrics["perplexity"] = math.exp(min(eval_metrics["eval_loss"], 50.0))
        trainer.log_metrics("eval", eval_metrics)
        trainer.save_metrics("eval", eval_metrics)
    if trainer.is_world_process_zero():
        print(f"Fine-tuned {'adapter' if config.use_lora else 'model'} and run record saved in {output_dir}")
    return output_dir


if __name__ == "__main__":
    run_as_script(main)
