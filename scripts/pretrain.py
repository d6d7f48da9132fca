"""Continued pre-training (Chinese-LLaMA-Alpaca "Pre-training Stage 2") on plain text, full or LoRA.

    python scripts/pretrain.py --model_config_file run_config/tiny/pt_config.json
    bash scripts/run_pt.sh                      # the same through torchrun + DeepSpeed ZeRO-2
    python scripts/pretrain.py --use_lora --tokenizer_name_or_path trained_models/zh-tokenizer \\
        --modules_to_save embed_tokens,lm_head --output_dir trained_models/pt-zh

Every *.txt (one document per non-empty line) and JSON lines file (`text` field) under dataset_dir is
read in sorted order, tokenised with eos after each document, concatenated and cut into block_size blocks
(common/pretrain_data.py; the held-out blocks are those with index % 100 < validation_split_percentage).
A tokenizer larger than the model's embedding grows the embedding and output head (new rows = mean of
the old ones). LoRA runs save the adapter (and modules_to_save) in output_dir/pt_lora_model, ready for
scripts/merge_lora.py. The output folder also holds pretrain_config.json, run_manifest.json, the held-out
perplexity before/after (eval_results.json) and the loss curve.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a file: find `common`

from common.config import ConfigError, config_field, config_to_dict, parse_config  # noqa: E402
from common.data import DataError  # noqa: E402
from common.runs import RunError, prepare_output_dir, setup_logging, write_run_record  # noqa: E402

logger = logging.getLogger("pretrain")

# Slack for vocab checks: models often pad their embedding to a multiple of 64/128 beyond the tokenizer.
VOCAB_PADDING_SLACK = 128


@dataclasses.dataclass
class PretrainConfig:
    model_name_or_path: str = config_field("models/tiny-llama", "local folder or hub name of the base model")
    tokenizer_name_or_path: str | None = config_field(
        None, "tokenizer to train with, e.g. an extended Chinese one (null: the model's)"
    )
    dataset_dir: str = config_field("data_dir/pretrain", "folder of *.txt / JSON lines (`text`) files")
    data_cache_dir: str | None = config_field(".cache/pt_blocks", "cache of tokenised blocks (null: none)")
    block_size: int = config_field(128, "tokens per training block")
    validation_split_percentage: float = config_field(5.0, "percent of blocks held out (whole blocks)")
    streaming: bool = config_field(False, "read the corpus lazily (IterableDataset); needs max_steps")
    eval_before_training: bool = config_field(True, "also report held-out perplexity before training")
    max_eval_blocks: int | None = config_field(None, "evaluate on at most N held-out blocks (null: all)")
    output_dir: str = config_field("trained_models/pt-tiny-llama", "run folder")
    per_device_train_batch_size: int = config_field(4, "blocks per device per forward pass")
    per_device_eval_batch_size: int = config_field(4, "blocks per device per evaluation pass")
    gradient_accumulation_steps: int = config_field(1, "micro-batches per optimizer step")
    num_epochs: float = config_field(1.0, "passes over the training blocks (in-memory mode)")
    max_steps: int = config_field(-1, "stop after N optimizer steps (-1: num_epochs)")
    learning_rate: float = config_field(2e-4, "peak learning rate")
    lr_scheduler_type: str = config_field("cosine", "transformers schedule name")
    warmup_steps: int = config_field(2, "linear warm-up steps")
    weight_decay: float = config_field(0.0, "AdamW weight decay")
    logging_steps: int = config_field(5, "log loss every N steps")
    save_steps: int = config_field(1000, "save a checkpoint every N steps")
    save_total_limit: int | None = config_field(3, "keep at most this many checkpoints")
    seed: int = config_field(42, "seed")
    precision: str = config_field("auto", "auto, bf16, fp16 or fp32")
    use_lora: bool = config_field(False, "train a LoRA adapter instead of the full model")
    lora_r: int = config_field(8, "LoRA rank")
    lora_alpha: float = config_field(32.0, "LoRA alpha")
    lora_dropout: float = config_field(0.05, "LoRA dropout")
    lora_target_modules: list[str] | None = config_field(None, 'LoRA targets or ["all"] (null: by family)')
    modules_to_save: list[str] | None = config_field(
        None, "modules trained fully and saved with the adapter, e.g. embed_tokens,lm_head"
    )
    deepspeed: str | None = config_field(None, "DeepSpeed JSON config")
    overwrite_output_dir: bool = config_field(False, "allow writing into an output_dir holding a run")
    resume_from_checkpoint: str | None = config_field(None, "true (newest) or a checkpoint folder")
    local_rank: int = config_field(-1, "set by launchers")

    def validate(self) -> None:
        if self.block_size < 2:
            raise ConfigError(f"block_size must be at least 2, got {self.block_size}")
        if not 0 <= self.validation_split_percentage < 100:
            raise ConfigError("validation_split_percentage must be in [0, 100)")
        if self.streaming and self.max_steps <= 0:
            raise ConfigError("--streaming has no length to count epochs with: set --max_steps")
        if self.modules_to_save and not self.use_lora:
            raise ConfigError("modules_to_save only means something with --use_lora")


def check_vocab(model_vocab: int, tokenizer: Any, base_tokenizer: Any | None) -> None:
    """Refuse a (model, tokenizer) pair that cannot work, before any training.

    Rule: a tokenizer may be LARGER than the model (we grow the embedding), or smaller by at most
    VOCAB_PADDING_SLACK rows (embedding padding). When the model's own tokenizer is at hand, the new
    tokenizer must also map every shared piece to the same id (an extension appends, it never renumbers);
    otherwise the model's rows would mean different pieces.
    """
    size = len(tokenizer)
    if size < model_vocab - VOCAB_PADDING_SLACK:
        raise ConfigError(f"tokenizer has {size} tokens but the model's embedding has {model_vocab} rows: "
                          "this is a different tokenizer, not an extension of the model's")  # fmt: skip
    if base_tokenizer is not None and base_tokenizer is not tokenizer:
        new_vocab = tokenizer.get_vocab()
        moved = [p for p, i in base_tokenizer.get_vocab().items() if new_vocab.get(p) != i]
        if moved:
            raise ConfigError(f"{len(moved)} pieces of the model's tokenizer have other ids in the new one "
                              f"(e.g. {moved[:3]}): the tokenizer must extend the model's, not renumber it")  # fmt: skip


def resize_embeddings_mean(model: Any, new_size: int) -> int:
    """Grow input embedding and output head to new_size rows; new rows = mean of the old rows.

    Returns the old size. Done by hand (not resize_token_embeddings' own init) so the rule is explicit.
    """
    import torch

    old_size = model.get_input_embeddings().weight.shape[0]
    if new_size <= old_size:
        return old_size
    model.resize_token_embeddings(new_size, mean_resizing=False)
    with torch.no_grad():
        for layer in {id(m): m for m in (model.get_input_embeddings(), model.get_output_embeddings())
                      if m is not None}.values():  # fmt: skip
            weight = layer.weight
            weight[old_size:] = weight[:old_size].mean(dim=0, keepdim=True)
    model.config.vocab_size = new_size
    return old_size


def perplexity(trainer: Any, dataset: Any, prefix: str) -> dict[str, float]:
    metrics = trainer.evaluate(eval_dataset=dataset, metric_key_prefix=prefix)
    metrics[f"{prefix}_perplexity"] = math.exp(min(metrics[f"{prefix}_loss"], 50.0))
    return metrics


def plain_perplexity(model: Any, dataset: Any, batch_size: int, prefix: str) -> dict[str, float]:
    """Held-out loss/perplexity with a plain loop: before training, DeepSpeed ZeRO-2 cannot evaluate
    (the Trainer would start ZeRO inference, which needs stage 3), so this runs on the bare model."""
    import torch

    device = torch.device(f"cuda:{os.environ.get('LOCAL_RANK', '0')}" if torch.cuda.is_available() else "cpu")
    model.to(device)
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(dataset), batch_size):
            ids = torch.tensor(dataset[start : start + batch_size]["input_ids"], device=device)
            total += model(input_ids=ids, labels=ids).loss.float().item() * len(ids)
            count += len(ids)
    model.train(was_training)
    loss = total / max(count, 1)
    return {f"{prefix}_loss": loss, f"{prefix}_perplexity": math.exp(min(loss, 50.0))}


def main(argv: list[str] | None = None) -> Path:
    setup_logging()
    # ---- Config -------------------------------------------------------------------------------
    config = parse_config(PretrainConfig, argv, description=__doc__,
                          config_file_flags={"model_config_file": "JSON with any of the keys below"})  # fmt: skip
    import torch
    from transformers import Trainer, TrainingArguments, default_data_collator, set_seed

    from common.modeling import count_parameters, load_causal_lm, load_tokenizer, pick_precision, torch_dtype
    from common.pretrain_data import corpus_files, load_blocks, split_blocks, stream_blocks

    resume = config.resume_from_checkpoint not in (None, "", "false", "False")
    output_dir = prepare_output_dir(config.output_dir, resume, config.overwrite_output_dir)
    precision = pick_precision(config.precision)
    set_seed(config.seed)

    # ---- Tokenizer and vocabulary check -------------------------------------------------------
    from transformers import AutoConfig

    model_vocab = AutoConfig.from_pretrained(config.model_name_or_path).vocab_size
    base_tokenizer = load_tokenizer(config.model_name_or_path)
    tokenizer = (
        load_tokenizer(config.tokenizer_name_or_path) if config.tokenizer_name_or_path else base_tokenizer
    )
    check_vocab(model_vocab, tokenizer, base_tokenizer)

    # ---- Data ---------------------------------------------------------------------------------
    files = corpus_files(config.dataset_dir)
    if config.streaming:
        import datasets

        def blocks(held_out: bool) -> Any:
            return datasets.IterableDataset.from_generator(
                stream_blocks,
                gen_kwargs={"files": files, "tokenizer": tokenizer, "block_size": config.block_size,
                            "validation_split_percentage": config.validation_split_percentage,
                            "held_out": held_out},
            )  # fmt: skip

        train_set = blocks(False)
        # Held-out blocks are few (a percentage); materialising them lets the Trainer count eval batches.
        eval_set = datasets.Dataset.from_list(list(blocks(True)))
        logger.info("streaming %d files; %d held-out blocks", len(files), len(eval_set))
    else:
        train_set, eval_set = split_blocks(
            load_blocks(files, tokenizer, config.block_size, config.data_cache_dir),
            config.validation_split_percentage,
        )
        logger.info("blocks of %d tokens: %d train, %d held out, from %d files", config.block_size,
                    len(train_set), len(eval_set), len(files))  # fmt: skip
        if not len(train_set):
            raise DataError(f"{config.dataset_dir}: too little text for one {config.block_size}-token block")
    if config.max_eval_blocks is not None and len(eval_set) > config.max_eval_blocks:
        eval_set = eval_set.select(range(config.max_eval_blocks))

    # ---- Model --------------------------------------------------------------------------------
    load_dtype = torch_dtype(precision) if config.use_lora else torch.float32
    model = load_causal_lm(config.model_name_or_path, dtype=load_dtype)
    model.config.use_cache = False
    old_vocab = resize_embeddings_mean(model, len(tokenizer))
    if old_vocab < len(tokenizer):
        logger.info("embedding and output head grown from %d to %d rows (new rows = mean of old)",
                    old_vocab, len(tokenizer))  # fmt: skip
        if config.use_lora and not config.modules_to_save:
            logger.warning("new token rows will not train: pass --modules_to_save embed_tokens,lm_head")
    if config.use_lora:
        from peft import LoraConfig, get_peft_model

        from common.families import lora_target_modules

        lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                          target_modules=lora_target_modules(model, config.lora_target_modules),
                          modules_to_save=config.modules_to_save, task_type="CAUSAL_LM")  # fmt: skip
        model = get_peft_model(model, lora)
    trainable, total = count_parameters(model)
    logger.info("parameters: %s trainable of %s", f"{trainable:,}", f"{total:,}")

    # ---- Train --------------------------------------------------------------------------------
    use_gpu = torch.cuda.is_available()
    args = TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=config.per_device_train_batch_size,
        per_device_eval_batch_size=config.per_device_eval_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        num_train_epochs=config.num_epochs,
        max_steps=config.max_steps,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler_type,
        warmup_steps=config.warmup_steps,
        weight_decay=config.weight_decay,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=not use_gpu,
        logging_steps=config.logging_steps,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        seed=config.seed,
        deepspeed=config.deepspeed,
        report_to=[],
        ddp_find_unused_parameters=False,
        include_num_input_tokens_seen="non_padding",
        dataloader_pin_memory=use_gpu,
    )
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()  # all ranks checked output_dir before rank 0 writes into it
    resolved = config_to_dict(config) | {"_resolved": {"precision": precision, "model_vocab": old_vocab,
                                                       "tokenizer_vocab": len(tokenizer)}}  # fmt: skip
    write_run_record(output_dir, resolved, "pretrain_config.json", [str(f) for f in files], config.seed)
    trainer = Trainer(model=model, args=args, train_dataset=train_set, eval_dataset=eval_set,
                      data_collator=default_data_collator, processing_class=tokenizer)  # fmt: skip
    results: dict[str, float] = {}
    if len(eval_set) and config.eval_before_training:
        results |= plain_perplexity(model, eval_set, config.per_device_eval_batch_size, "before")
    checkpoint = (
        config.resume_from_checkpoint
        if resume and config.resume_from_checkpoint.lower() != "true"
        else resume or None
    )
    train_result = trainer.train(resume_from_checkpoint=checkpoint)
    if len(eval_set):
        results |= perplexity(trainer, eval_set, "after")

    # ---- Save ---------------------------------------------------------------------------------
    metrics = dict(train_result.metrics)
    metrics["train_tokens_per_second"] = trainer.state.num_input_tokens_seen / max(
        metrics["train_runtime"], 1e-9
    )
    if use_gpu:
        metrics["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
        # Every rank prints its own peak (log_metrics shows rank 0 only); ZeRO-2 shards differ per rank.
        print(f"rank {os.environ.get('RANK', '0')}: peak GPU memory {metrics['peak_gpu_memory_gib']:.3f} GiB, "
              f"{metrics['train_tokens_per_second']:.0f} tokens/s on this rank", flush=True)  # fmt: skip
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)
    final_dir = output_dir / "pt_lora_model" if config.use_lora else output_dir
    trainer.save_model(str(final_dir))
    trainer.save_state()
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(str(final_dir))
        (output_dir / "eval_results.json").write_text(json.dumps(results, indent=2) + "\n")
        if results:
            logger.info("held-out perplexity: before %s, after %s", results.get("before_perplexity"),
                        results.get("after_perplexity"))  # fmt: skip
        from common.report import plot_loss

        logger.info("loss curve saved to %s", plot_loss(output_dir))
        print(f"Pre-trained {'adapter' if config.use_lora else 'model'} saved in {final_dir}")
    from common.runs import finish_distributed

    finish_distributed()
    return output_dir


if __name__ == "__main__":
    try:
        main()
    except (ConfigError, DataError, RunError, OSError) as err:
        sys.exit(f"error: {err}")
