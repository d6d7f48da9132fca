"""Plain-text corpora for continued pre-training: documents -> tokens -> fixed-size blocks.

Both the in-memory path (`load_blocks`, cached with `datasets.save_to_disk`) and the streaming path
(`stream_blocks`, a generator for `datasets.IterableDataset`) call the same pure `pack_blocks`, so they
give the same blocks in the same order.

Held-out rule (whole blocks, decidable while streaming): block number i is held out when
`i % 100 < validation_split_percentage`. No block straddles the split, and a streaming reader never needs
to know the corpus length.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from common.data import DataError

logger = logging.getLogger(__name__)


def pack_blocks(token_lists: Iterable[list[int]], block_size: int) -> Iterator[list[int]]:
    """Concatenate token lists and cut them into `block_size` blocks; the last shorter remainder is dropped."""
    if block_size < 1:
        raise ValueError(f"block_size must be at least 1, got {block_size}")
    buffer: list[int] = []
    for tokens in token_lists:
        buffer.extend(tokens)
        start = 0
        while len(buffer) - start >= block_size:
            yield buffer[start : start + block_size]
            start += block_size
        del buffer[:start]


def is_held_out(block_index: int, validation_split_percentage: float) -> bool:
    """Whole-block split: block i is held out when i % 100 < the percentage (see the module docstring)."""
    return block_index % 100 < validation_split_percentage


def corpus_files(dataset_dir: str | Path) -> list[Path]:
    """Every *.txt, *.json and *.jsonl under dataset_dir (recursively), in sorted order."""
    root = Path(dataset_dir)
    if not root.is_dir():
        raise DataError(f"dataset_dir {root} is not a folder")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in (".txt", ".json", ".jsonl"))
    if not files:
        raise DataError(f"{root}: no *.txt or JSON lines (*.json, *.jsonl) files found")
    return files


def iter_documents(files: list[Path]) -> Iterator[str]:
    """Documents one at a time: each non-empty line of a .txt, the `text` field of each JSON line."""
    for path in files:
        with path.open(encoding="utf-8") as handle:
            for line_number, line in enumerate(handle, 1):
                line = line.strip()
                if not line:
                    continue
                if path.suffix == ".txt":
                    yield line
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise DataError(f"{path}:{line_number}: not a JSON line ({err.msg})") from None
                if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                    raise DataError(f"{path}:{line_number}: a JSON line needs a string `text` field")
                if record["text"].strip():
                    yield record["text"]


def tokenise_documents(documents: Iterable[str], tokenizer: Any) -> Iterator[list[int]]:
    """Token ids of each document followed by eos (no bos: the eos already separates documents)."""
    for text in documents:
        yield tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]


def stream_blocks(files: list[Path], tokenizer: Any, block_size: int, validation_split_percentage: float,
                  held_out: bool) -> Iterator[dict[str, list[int]]]:  # fmt: skip
    """Training (held_out False) or held-out blocks, generated lazily: nothing corpus-sized in memory."""
    blocks = pack_blocks(tokenise_documents(iter_documents(files), tokenizer), block_size)
    for index, block in enumerate(blocks):
        if is_held_out(index, validation_split_percentage) == held_out:
            yield {"input_ids": block, "labels": list(block)}


def cache_key(files: list[Path], tokenizer: Any, block_size: int) -> str:
    """Hash of the files' contents, the tokenizer's vocabulary and eos, and block_size."""
    from common.runs import sha256_of

    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.name}:{sha256_of(path)}\n".encode())
    vocab = json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False)
    digest.update(hashlib.sha256(vocab.encode()).hexdigest().encode())
    digest.update(f"eos={tokenizer.eos_token_id} block_size={block_size} v1".encode())
    return digest.hexdigest()[:16]


def load_blocks(files: list[Path], tokenizer: Any, block_size: int, cache_dir: str | None) -> Any:
    """All blocks as a `datasets.Dataset` (input_ids), from cache_dir when an identical run made them."""
    import datasets

    cached = Path(cache_dir) / f"pt_blocks_{cache_key(files, tokenizer, block_size)}" if cache_dir else None
    if cached is not None and (cached / "dataset_info.json").is_file():
        logger.info("loaded tokenised blocks from cache %s", cached)
        return datasets.load_from_disk(str(cached))
    blocks = list(pack_blocks(tokenise_documents(iter_documents(files), tokenizer), block_size))
    dataset = datasets.Dataset.from_dict({"input_ids": blocks})
    if cached is not None:
        # Written under a private name and renamed whole, so a run reading the cache never sees half of it; when
        # another run stored the same blocks first, the rename fails and our copy goes.
        partial = cached.with_name(f"{cached.name}.partial-{os.getpid()}")
        dataset.save_to_disk(str(partial))
        try:
            os.replace(partial, cached)
        except OSError:
            shutil.rmtree(partial, ignore_errors=True)
        logger.info("tokenised %d blocks; cached in %s", len(blocks), cached)
    return dataset


def split_blocks(dataset: Any, validation_split_percentage: float) -> tuple[Any, Any]:
    """(train, held-out) selections of an in-memory block dataset, with labels = input_ids."""
    held = [i for i in range(len(dataset)) if is_held_out(i, validation_split_percentage)]
    held_set = set(held)
    train = [i for i in range(len(dataset)) if i not in held_set]

    def with_labels(subset: Any) -> Any:
        return subset.map(lambda row: {"labels": row["input_ids"]})

    return with_labels(dataset.select(train)), with_labels(dataset.select(held))
