"""Continued pre-training (Chinese-LLaMA-Alpaca "Pre-training Stage 2") on plain text, full or LoRA.

    python scripts/pretrain.py --model_config_file run_config/tiny/pt_config.json
    bash scripts/run_pt.sh                      # the same through torchrun + DeepSpeed ZeRO-2
    python scripts/pretrain.py --use_lora --tokenizer_name_or_path trained_models/zh-tokenizer \\
        --modules_to_save embed_tokens,lm_head --output_dir trained_models/pt-zh
    python scripts/pretrain.py --dataset wiki_demo,c4_demo --dataset_dir data   # registered text datasets

Every *.txt (one document per non-empty line) and JSON lines file (`text` field) under dataset_dir (or,
with --dataset, the files of those dataset_info.json entries) is read in sorted order, tokenised with eos
after each document, concatenated and cut into block_size blocks (common/pretrain_data.py; the held-out
blocks are those with index % 100 < validation_split_percentage).
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

from common.config import ConfigError, config_field, stage_default  # noqa: E402
from common.data import DataError  # noqa: E402
from common.modeling import (  # noqa: E402
    compile_decoder_layers,
    count_parameters,
    load_model_config,
    load_tokenizer,
    load_training_model,
    whole_weights,
)
from common.packing import DocumentBlockCollator, check_model_supports_packing  # noqa: E402
from common.pretrain_data import (  # noqa: E402
    ResumableBlockStream,
    corpus_files,
    load_blocks,
    registry_corpus,
    split_blocks,
    stream_blocks,
)
from common.runs import open_run, run_as_script, start_trainer_run  # noqa: E402
from common.settings import LoraSettings, ModelSettings, RegistrySettings, RunSettings, TrainSettings  # noqa: E402
from common.training import causal_lm_trainer_class, liger_arguments, lora_config, trainer_arguments  # noqa: E402

logger = logging.getLogger("pretrain")

# Slack for vocab checks: models often pad their embedding to a multiple of 64/128 beyond the tokenizer.
VOCAB_PADDING_SLACK = 128
# In each checkpoint of a streaming run: where the corpus stream stands after the blocks training consumed.
DATA_STATE_FILE = "data_state.json"


@dataclasses.dataclass
class PretrainConfig(RunSettings, LoraSettings, TrainSettings, RegistrySettings, ModelSettings):
    """The shared groups (common/settings.py) plus the keys of pre-training alone."""

    tokenizer_name_or_path: str | None = config_field(
        None, "tokenizer to train with, e.g. an extended Chinese one (null: the model's)"
    )
    dataset_dir: str = stage_default("data_dir/pretrain")
    data_cache_dir: str | None = config_field(".cache/pt_blocks", "cache of tokenised blocks (null: none)")
    block_size: int = config_field(128, "tokens per training block")
    validation_split_percentage: float = config_field(5.0, "percent of blocks held out (whole blocks)")
    streaming: bool = config_field(False, "read the corpus lazily (IterableDataset); needs max_steps")
    eval_before_training: bool = config_field(True, "also report held-out perplexity before training")
    max_eval_blocks: int | None = config_field(None, "evaluate on at most N held-out blocks (null: all)")
    modules_to_save: list[str] | None = config_field(
        None, "modules trained fully and saved with the adapter, e.g. embed_tokens,lm_head"
    )
    output_dir: str = stage_default("trained_models/pt-tiny-llama")
    batch_size: int = stage_default(4)
    learning_rate: float = stage_default(2e-4)
    warmup_steps: int = stage_default(2)
    logging_steps: int = stage_default(5)
    lora_alpha: float = stage_default(32.0)
    wandb_project: str = stage_default("belle-pretrain")

    def check(self) -> None:
        if self.block_size < 2:
            raise ConfigError(f"block_size must be at least 2, got {self.block_size}")
        if not 0 <= self.validation_split_percentage < 100:
            raise ConfigError("validation_split_percentage must be in [0, 100)")
        if self.streaming and self.max_steps <= 0:
            raise ConfigError("--streaming has no length to count epochs with: set --max_steps")
        if self.modules_to_save and not self.use_lora:
            raise ConfigError("modules_to_save only means something with --use_lora")
        if self.group_by_length:
            raise ConfigError(
                "group_by_length: pre-training blocks all have block_size tokens; nothing to group"
            )


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

    old_size = model.get_input_embeddings().num_embeddings  # a ZeRO-3 shard's weight has no rows to count
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


def streamed_training_set(stream: Any) -> Any:
    """The corpus stream (common/pretrain_data.py: ResumableBlockStream) as a torch IterableDataset, which the
    Trainer reads batch by batch without a length."""
    import torch

    class StreamedBlocks(torch.utils.data.IterableDataset):
        def __iter__(self) -> Any:
            return iter(stream)

    return StreamedBlocks()


def with_block_numbers(collate: Any) -> Any:
    """`collate` for streamed rows, with their block numbers beside the batch: CausalLMTrainer takes them out
    and keeps the highest one training has consumed (the loader itself reads a batch or two ahead)."""
    import torch

    def collate_numbered(rows: list[dict[str, Any]]) -> dict[str, Any]:
        batch = collate([{key: value for key, value in row.items() if key != "block_number"} for row in rows])
        if "block_number" in rows[0]:  # held-out blocks, read whole for evaluation, have none
            batch["block_number"] = torch.tensor([row["block_number"] for row in rows])
        return batch

    return collate_numbered


def stream_place_callback(stream: Any) -> Any:
    """A Trainer callback that writes DATA_STATE_FILE (JSON, never a pickle) into each checkpoint, before its
    manifest is written (the guard's callback comes after this one): the place in the corpus after the last block
    training consumed, from which a resumed run reads on. Set `trainer` once the Trainer exists."""
    import torch
    from transformers import TrainerCallback

    from common.runs import write_json_atomic

    class StreamPlace(TrainerCallback):
        trainer: Any = None

        def on_save(self, args, state, control, **kwargs):
            consumed = torch.tensor([self.trainer.last_block_number], device=args.device)
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                # Each process consumed a slice of every batch; the process that reads the stream knows them all.
                torch.distributed.all_reduce(consumed, op=torch.distributed.ReduceOp.MAX)
            if args.should_save and int(consumed):
                folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                write_json_atomic(folder / DATA_STATE_FILE, stream.place_after(int(consumed)))

    return StreamPlace()


def main(argv: list[str] | None = None) -> Path:
    # ---- Config and run folder ----------------------------------------------------------------
    config, output_dir, checkpoint, precision, resolved = open_run(
        PretrainConfig, argv, __doc__, {"model_config_file": "JSON with any of the keys below"}
    )
    # Heavy imports only now: --help and a refused run folder answer at once.
    import torch
    from transformers import TrainingArguments, default_data_collator

    from common.chunked_loss import add_chunked_loss, supports_chunked_loss

    # ---- Tokenizer and vocabulary check -------------------------------------------------------
    trust = config.trust_remote_code
    model_vocab = load_model_config(config.model_name_or_path, trust).vocab_size
    base_tokenizer = load_tokenizer(config.model_name_or_path, trust_remote_code=trust)
    tokenizer = (
        load_tokenizer(config.tokenizer_name_or_path, trust_remote_code=trust)
        if config.tokenizer_name_or_path
        else base_tokenizer
    )
    check_vocab(model_vocab, tokenizer, base_tokenizer)

    # ---- Data ---------------------------------------------------------------------------------
    if config.dataset:
        files, text_columns = registry_corpus(config.dataset, config.dataset_dir)
    else:
        files, text_columns = corpus_files(config.dataset_dir), None
    reading = {"text_columns": text_columns, "skip_bad_records": config.skip_bad_records}
    stream, stream_start = None, None
    if config.streaming:
        import datasets

        if checkpoint is not None and (checkpoint / DATA_STATE_FILE).is_file():  # checked by its manifest
            stream_start = json.loads((checkpoint / DATA_STATE_FILE).read_text())
            logger.info("the stream resumes after block %d, in file %s at byte %d: the blocks before are not read "
                        "again", stream_start["block_number"], files[min(stream_start["corpus"]["file"], len(files) - 1)],
                        stream_start["corpus"]["offset"])  # fmt: skip
        elif checkpoint is not None:
            logger.warning("%s has no %s: the Trainer finds its place by reading the consumed blocks again",
                           checkpoint, DATA_STATE_FILE)  # fmt: skip
        stream = ResumableBlockStream(files, tokenizer, config.block_size, config.validation_split_percentage,
                                      start=stream_start, **reading)  # fmt: skip
        train_set = streamed_training_set(stream)
        # Held-out blocks are few (a percentage); materialising them lets the Trainer count eval batches.
        eval_set = datasets.Dataset.from_list(list(stream_blocks(
            files, tokenizer, config.block_size, config.validation_split_percentage, held_out=True, **reading)))
        logger.info("streaming %d files; %d held-out blocks", len(files), len(eval_set))
    else:
        train_set, eval_set = split_blocks(
            load_blocks(files, tokenizer, config.block_size, config.data_cache_dir, **reading),
            config.validation_split_percentage,
        )
        logger.info("blocks of %d tokens: %d train, %d held out, from %d files", config.block_size,
                    len(train_set), len(eval_set), len(files))  # fmt: skip
        if not len(train_set):
            raise DataError(f"{config.dataset or config.dataset_dir}: too little text for one "
                            f"{config.block_size}-token block (the {len(files)} file(s) make no whole block)")  # fmt: skip
    if config.max_eval_blocks is not None and len(eval_set) > config.max_eval_blocks:
        eval_set = eval_set.select(range(config.max_eval_blocks))

    # ---- Model --------------------------------------------------------------------------------
    # The Trainer's arguments first: under ZeRO-3 each weight then loads straight into its shard, whole only when
    # the weights are used before training (vocabulary growth, the perplexity before training).
    use_gpu = torch.cuda.is_available()
    args = TrainingArguments(
        **trainer_arguments(config, config, output_dir, precision, has_eval=False),
        include_num_input_tokens_seen="non_padding",
        **liger_arguments(config.use_liger_kernel, config.torch_compile),
        remove_unused_columns=False,
        ignore_data_skip=stream_start is not None,  # the stream starts at its place: nothing to skip
    )
    used_before_training = len(tokenizer) > model_vocab or bool(len(eval_set) and config.eval_before_training)
    with whole_weights(args, when=used_before_training):
        model = load_training_model(config, precision, config.use_lora, packing=config.packing)
    model.config.use_cache = False
    if config.packing:
        check_model_supports_packing(model)
    if not config.use_liger_kernel and supports_chunked_loss(model):
        add_chunked_loss(model)
    old_vocab = resize_embeddings_mean(model, len(tokenizer))
    if old_vocab < len(tokenizer):
        logger.info("embedding and output head grown from %d to %d rows (new rows = mean of old)",
                    old_vocab, len(tokenizer))  # fmt: skip
        if config.use_lora and not config.modules_to_save:
            logger.warning("new token rows will not train: pass --modules_to_save embed_tokens,lm_head")
    if config.use_lora:
        from peft import get_peft_model

        lora = lora_config(
            config, model, "CAUSAL_LM", config.model_type, modules_to_save=config.modules_to_save
        )
        model = get_peft_model(model, lora)
    if config.torch_compile:
        logger.info("torch.compile: %d decoder blocks, one by one (the head and loss stay eager)",
                    compile_decoder_layers(model))  # fmt: skip
    trainable, total = count_parameters(model)
    logger.info("parameters: %s trainable of %s", f"{trainable:,}", f"{total:,}")

    # ---- Train --------------------------------------------------------------------------------
    resolved["_resolved"] |= {"model_vocab": old_vocab, "tokenizer_vocab": len(tokenizer)}
    # With packing, each document in a block attends only to itself (positions restart after its eos).
    collator = DocumentBlockCollator(tokenizer.eos_token_id) if config.packing else default_data_collator
    callbacks = []
    if stream is not None:
        collator = with_block_numbers(collator)
        callbacks.append(stream_place_callback(stream))
    # The run record, W&B, and the guard: checkpoint manifests, SIGTERM/SIGINT stop, save errors.
    guard = start_trainer_run(output_dir, resolved, "pretrain_config.json", [str(f) for f in files], config,
                              checkpoint, [config.model_name_or_path, config.tokenizer_name_or_path])  # fmt: skip
    trainer = causal_lm_trainer_class()(model=model, args=args, train_dataset=train_set, eval_dataset=eval_set,
                                        data_collator=collator, processing_class=tokenizer,
                                        callbacks=callbacks + guard.callbacks)  # fmt: skip
    for callback in callbacks:
        callback.trainer = trainer
    results: dict[str, float] = {}
    if len(eval_set) and config.eval_before_training:
        results |= plain_perplexity(model, eval_set, config.per_device_eval_batch_size, "before")
    train_result = guard.train(trainer)  # SIGTERM/SIGINT: exits 143/130 here, after saving a checkpoint
    if len(eval_set):
        results |= perplexity(trainer, eval_set, "after")

    # ---- Save ---------------------------------------------------------------------------------
    metrics = guard.record_train_metrics(trainer, train_result)  # loss and tokens over every resumed session
    if use_gpu:
        # Every rank prints its own peak (log_metrics shows rank 0 only); ZeRO-2 shards differ per rank.
        print(f"rank {os.environ.get('RANK', '0')}: peak GPU memory {metrics['peak_gpu_memory_gib']:.3f} GiB, "
              f"{metrics['train_tokens_per_second']:.0f} tokens/s on this rank", flush=True)  # fmt: skip
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
    return output_dir


if __name__ == "__main__":
    run_as_script(main)
