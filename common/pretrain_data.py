"""Plain-text corpora for continued pre-training: documents -> tokens -> fixed-size blocks.

Both the in-memory path (`load_blocks`, cached with `datasets.save_to_disk`) and the streaming path
(`stream_blocks`, a generator for `datasets.IterableDataset`) call the same pure `pack_blocks`, so they
give the same blocks in the same order.

Held-out rule (whole blocks, decidable while streaming): block number i is held out when
`i % 100 < validation_split_percentage`. No block straddles the split, and a streaming reader never needs
to know the corpus length. A corpus so small that the rule would hold out every block (at most
`validation_split_percentage` blocks) trains on all of them and has no held-out set; the log says so.

The corpus is every file under a folder, or registered datasets (`--dataset a,b`: entries of
dataset_dir/dataset_info.json whose records are text, e.g. LLaMA-Factory's `"columns": {"prompt": "text"}`).
A line that is not UTF-8 or not a JSON object stops the run naming file and line, or with
skip_bad_records is skipped and counted.
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

from common.data import DataError, load_dataset_info

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


def registry_corpus(dataset: str, dataset_dir: str | Path) -> tuple[list[Path], dict[str, str]]:
    """The files of registered text datasets (names in dataset_dir/dataset_info.json) and, per file, the
    JSON field that holds its text (LLaMA-Factory's pre-training entries name it as the prompt column)."""
    registry = load_dataset_info(dataset_dir)
    files, text_columns = [], {}
    for name in (n.strip() for n in dataset.split(",") if n.strip()):
        if name not in registry:
            raise DataError(f"dataset {name!r} is not in {Path(dataset_dir) / 'dataset_info.json'}; "
                            f"registered: {', '.join(registry)}")  # fmt: skip
        spec = registry[name]
        spec.check_usable()
        if spec.kind != "text":
            raise DataError(f"dataset {name!r} is {spec.kind} data, not pre-training text (a pre-training entry "
                            'has formatting text, or LLaMA-Factory\'s "columns": {"prompt": "text"})')  # fmt: skip
        if spec.source() != "file":
            raise DataError(f"dataset {name!r}: pre-training reads local files; download "
                            f"{spec.hf_hub_url!r} and register file_name")  # fmt: skip
        if spec.num_samples is not None:
            raise DataError(f"dataset {name!r}: num_samples is not supported for a pre-training corpus")
        path = Path(spec.file_name or "")
        path = path if path.is_absolute() else Path(dataset_dir) / path
        found = corpus_files(path) if path.is_dir() else [path]
        if not found[0].is_file():
            raise DataError(f"dataset {name!r}: data file not found: {path}")
        for file in found:
            files.append(file)
            text_columns[str(file)] = spec.column("text") or "text"
    return files, text_columns


def _lines(path: Path, skipped: list[str] | None, offset: int = 0, line: int = 0) -> Iterator[tuple[int, str, int]]:
    """(line number, text, byte offset after the line) of each line from byte `offset` (line number `line`
    before it), the BOM dropped; a line that is not UTF-8 stops the read, or is noted in `skipped` and left out."""
    with path.open("rb") as handle:
        handle.seek(offset)
        for number, raw in enumerate(handle, line + 1):
            offset += len(raw)
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                yield number, raw.decode("utf-8"), offset
            except UnicodeDecodeError:
                _bad(f"{path}:{number}: not valid UTF-8", skipped)


def _bad(problem: str, skipped: list[str] | None) -> None:
    if skipped is None:
        raise DataError(problem)
    skipped.append(problem)


def _json_array_documents(path: Path, column: str, skipped: list[str] | None) -> Iterator[str]:
    """A JSON array file (LLaMA-Factory's .json datasets): one document, read whole."""
    try:
        items = json.loads(path.read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not valid UTF-8 ({err.reason}); a JSON array is read whole") from None
    except json.JSONDecodeError as err:
        raise DataError(f"{path}:{err.lineno}: invalid JSON: {err.msg}") from None
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get(column), str):
            _bad(f"{path}: item {index}: needs a string `{column}` field", skipped)
        elif item[column].strip():
            yield item[column]


def _starts_with_bracket(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"[")


def iter_documents(
    files: list[Path], text_columns: dict[str, str] | None = None, skipped: list[str] | None = None
) -> Iterator[str]:
    """Documents one at a time: each non-empty line of a .txt, the text field (`text` unless text_columns
    names another for the file) of each JSON line or JSON array item. Bad lines raise DataError naming
    file and line, or (with a `skipped` list) are noted there and left out."""
    for document, _ in positioned_documents(files, text_columns, skipped):
        yield document


def positioned_documents(
    files: list[Path], text_columns: dict[str, str] | None = None, skipped: list[str] | None = None,
    start: dict[str, int] | None = None,
) -> Iterator[tuple[str, dict[str, int]]]:  # fmt: skip
    """iter_documents' documents, each with the place just after it: {"file": index in files, "offset": byte
    offset of the next line (a JSON array file: documents of it read so far), "line": its line number}.
    From `start` (such a place) the read begins there: earlier lines are neither read nor parsed."""
    start = start or {"file": 0, "offset": 0, "line": 0}
    for index in range(start["file"], len(files)):
        path = files[index]
        offset, line = (start["offset"], start["line"]) if index == start["file"] else (0, 0)
        column = (text_columns or {}).get(str(path), "text")
        if path.suffix != ".txt" and _starts_with_bracket(path):
            # An array is one JSON value: it is parsed whole, and the documents before `offset` are passed over.
            for number, document in enumerate(_json_array_documents(path, column, skipped), 1):
                if number > offset:
                    yield document, {"file": index, "offset": number, "line": 0}
            continue
        for line_number, text, offset_after in _lines(path, skipped, offset, line):
            place = {"file": index, "offset": offset_after, "line": line_number}
            text = text.strip()
            if not text:
                continue
            if path.suffix == ".txt":
                yield text, place
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as err:
                _bad(f"{path}:{line_number}: not a JSON line ({err.msg})", skipped)
                continue
            if not isinstance(record, dict) or not isinstance(record.get(column), str):
                _bad(f"{path}:{line_number}: a JSON line needs a string `{column}` field", skipped)
                continue
            if record[column].strip():
                yield record[column], place


def report_skipped(skipped: list[str]) -> None:
    if skipped:
        logger.warning("skipped %d bad line(s) of the corpus (first: %s)", len(skipped), skipped[0])


def tokenise_documents(documents: Iterable[str], tokenizer: Any) -> Iterator[list[int]]:
    """Token ids of each document followed by eos (no bos: the eos already separates documents)."""
    for text in documents:
        yield tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]


def stream_blocks(files: list[Path], tokenizer: Any, block_size: int, validation_split_percentage: float,
                  held_out: bool, *, text_columns: dict[str, str] | None = None,
                  skip_bad_records: bool = False) -> Iterator[dict[str, list[int]]]:  # fmt: skip
    """Training (held_out False) or held-out blocks, generated lazily: nothing corpus-sized in memory.

    Held-out blocks seen before the first training block wait (at most the percentage of them): when the
    corpus ends first, the rule would hold out every block, so they are all training blocks instead."""
    skipped: list[str] | None = [] if skip_bad_records else None
    documents = iter_documents(files, text_columns, skipped)
    blocks = pack_blocks(tokenise_documents(documents, tokenizer), block_size)
    waiting: list[dict[str, list[int]]] = []
    any_trained = False
    for index, block in enumerate(blocks):
        row = {"input_ids": block, "labels": list(block)}
        if is_held_out(index, validation_split_percentage):
            if not any_trained:
                waiting.append(row)
            elif held_out:
                yield row
            continue
        if not any_trained:
            any_trained = True
            if held_out:
                yield from waiting
            waiting = []
        if not held_out:
            yield row
    if not any_trained and waiting and not held_out:
        logger.warning("only %d blocks: validation_split_percentage %s would hold out every one; all of them "
                       "train and there is no held-out set", len(waiting), validation_split_percentage)  # fmt: skip
        yield from waiting
    report_skipped(skipped or [])


class ResumableBlockStream:
    """The training blocks of `stream_blocks` (same blocks, same order, pass after pass), which can start from
    the place a checkpoint recorded instead of reading the corpus from its start to find it.

    Every training block gets a number (1, 2, ... over all passes: `block_number` in its row); after yielding
    one, the stream notes where it stands (`place_after(n)`, JSON: the file and byte offset after the last
    document read, the tokens of it not yet cut into a block, the block count of the held-out rule)
    with a chain hash over the blocks so far and the documents this session has read. A checkpoint stores the
    place after the last block training consumed; a resumed stream (`start`) continues from it, and its later
    passes begin at the corpus' start, as the uninterrupted stream's do. (Not covered: a corpus so small that
    its only blocks are the held-out ones trained at the end of a pass; a resume inside those restarts the pass.)"""

    def __init__(self, files: list[Path], tokenizer: Any, block_size: int, validation_split_percentage: float,
                 *, text_columns: dict[str, str] | None = None, skip_bad_records: bool = False,
                 start: dict[str, Any] | None = None) -> None:  # fmt: skip
        self.files, self.tokenizer, self.block_size = files, tokenizer, block_size
        self.validation_split_percentage = validation_split_percentage
        self.text_columns, self.skip_bad_records = text_columns, skip_bad_records
        self.start = start  # used by the first pass only; later passes begin at the corpus' start
        self.blocks_yielded = start["block_number"] if start else 0
        self.chain = start["blocks_sha256_chain"] if start else ""
        self.documents_read = 0  # this session's, never carried over: a resume shows what it did not re-read
        self.places: dict[int, dict[str, Any]] = {}  # block number -> place after it (the last few hundred)

    def place_after(self, block_number: int) -> dict[str, Any]:
        return self.places[block_number]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        start, self.start = self.start, None
        place = dict(start["corpus"]) if start else {"file": 0, "offset": 0, "line": 0}
        buffer: list[int] = list(start["pending"]) if start else []
        state = {"block_index": start["block_index"] if start else 0, "trained": bool(start)}
        skipped: list[str] | None = [] if self.skip_bad_records else None
        waiting: list[list[int]] = []  # held-out blocks before the first training block of this pass

        def cut_blocks(place: dict[str, int]) -> Iterator[dict[str, Any]]:
            """pack_blocks' cutting, one document at a time, with the held-out rule of stream_blocks."""
            cut = 0
            while len(buffer) - cut >= self.block_size:
                block, cut, index = buffer[cut : cut + self.block_size], cut + self.block_size, state["block_index"]
                state["block_index"] += 1
                if is_held_out(index, self.validation_split_percentage):
                    if not state["trained"]:
                        waiting.append(block)
                    continue
                state["trained"] = True
                waiting.clear()
                yield self._row(block, place, buffer[cut:], state["block_index"])
            del buffer[:cut]

        yield from cut_blocks(place)  # a resumed stream first cuts what its checkpoint left uncut
        for document, after in positioned_documents(self.files, self.text_columns, skipped, place):
            self.documents_read += 1
            buffer.extend(self.tokenizer(document, add_special_tokens=False)["input_ids"])
            buffer.append(self.tokenizer.eos_token_id)
            yield from cut_blocks(after)
        if not state["trained"] and waiting:
            logger.warning("only %d blocks: validation_split_percentage %s would hold out every one; all of them "
                           "train and there is no held-out set", len(waiting), self.validation_split_percentage)  # fmt: skip
            end = {"file": len(self.files), "offset": 0, "line": 0}
            for block in list(waiting):
                yield self._row(block, end, [], state["block_index"])
        report_skipped(skipped or [])

    def _row(self, block: list[int], corpus: dict[str, int], pending: list[int], block_index: int) -> dict[str, Any]:
        self.blocks_yielded += 1
        self.chain = hashlib.sha256(f"{self.chain}{block}".encode()).hexdigest()
        self.places[self.blocks_yielded] = {
            "block_number": self.blocks_yielded, "corpus": corpus, "pending": list(pending),
            "block_index": block_index, "blocks_sha256_chain": self.chain,
            "documents_read_this_session": self.documents_read,
        }  # fmt: skip
        for old in [n for n in self.places if n <= self.blocks_yielded - 512]:
            del self.places[old]  # the loader reads a batch or two ahead of training, never hundreds
        return {"input_ids": block, "labels": list(block), "block_number": self.blocks_yielded}


def cache_key(files: list[Path], tokenizer: Any, block_size: int, **reading: Any) -> str:
    """Hash of the files' contents, the tokenizer's vocabulary and eos, block_size and how files are read
    (text columns, bad-line skipping)."""
    from common.runs import sha256_of

    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.name}:{sha256_of(path)}\n".encode())
    if any(reading.values()):
        digest.update(json.dumps(reading, sort_keys=True).encode())
    vocab = json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False)
    digest.update(hashlib.sha256(vocab.encode()).hexdigest().encode())
    digest.update(f"eos={tokenizer.eos_token_id} block_size={block_size} v1".encode())
    return digest.hexdigest()[:16]


def load_blocks(
    files: list[Path],
    tokenizer: Any,
    block_size: int,
    cache_dir: str | None,
    *,
    text_columns: dict[str, str] | None = None,
    skip_bad_records: bool = False,
) -> Any:
    """All blocks as a `datasets.Dataset` (input_ids), from cache_dir when an identical run made them."""
    import datasets

    key = cache_key(
        files, tokenizer, block_size, text_columns=text_columns, skip_bad_records=skip_bad_records
    )
    cached = Path(cache_dir) / f"pt_blocks_{key}" if cache_dir else None
    if cached is not None and (cached / "dataset_info.json").is_file():
        logger.info("loaded tokenised blocks from cache %s", cached)
        return datasets.load_from_disk(str(cached))
    skipped: list[str] | None = [] if skip_bad_records else None
    documents = iter_documents(files, text_columns, skipped)
    blocks = list(pack_blocks(tokenise_documents(documents, tokenizer), block_size))
    report_skipped(skipped or [])
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
    if held and len(held) == len(dataset):
        logger.warning("only %d blocks: validation_split_percentage %s would hold out every one; all of them "
                       "train and there is no held-out set", len(held), validation_split_percentage)  # fmt: skip
        held = []
    held_set = set(held)
    train = [i for i in range(len(dataset)) if i not in held_set]

    def with_labels(subset: Any) -> Any:
        return subset.map(lambda row: {"labels": row["input_ids"]})

    return with_labels(dataset.select(train)), with_labels(dataset.select(held))
