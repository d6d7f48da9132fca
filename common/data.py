"""Reading instruction data and turning records into training examples, exactly to the token.

The prompt format is BELLE's: `Human: {instruction}\\n\\nAssistant: ` followed by the response.
The prompt and the response are tokenised separately and concatenated, because a byte-level BPE can
merge characters across the boundary and then no label mask can separate them cleanly.
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100  # label value that the loss skips (torch.nn.CrossEntropyLoss's ignore_index)

BELLE_PROMPT = "Human: {instruction}\n\nAssistant: "


class DataError(ValueError):
    """Bad input data; the message names the file and line, and scripts print it without a traceback."""


def read_json_records(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSON array or JSON lines file of objects; errors name the file and line (or index)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: accept a UTF-8 byte-order mark
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not valid UTF-8 ({err.reason})") from None
    if not text.strip():
        raise DataError(f"{path}: the file is empty")

    if text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{err.lineno}: invalid JSON: {err.msg}") from None
        where = [f"{path}: item {i}" for i in range(len(records))]
    else:
        records, where = [], []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise DataError(
                    f"{path}:{number}: invalid JSON line: {err.msg} (column {err.colno})"
                ) from None
            where.append(f"{path}:{number}")
    for record, location in zip(records, where, strict=True):
        if not isinstance(record, dict):
            raise DataError(f"{location}: expected a JSON object, got {type(record).__name__}")
        record["_where"] = location
    return records


def check_instruction_records(records: list[dict[str, Any]]) -> None:
    """Every record needs a non-empty string `instruction` and `output`; `input` is optional."""
    for record in records:
        for key in ("instruction", "output"):
            value = record.get(key)
            if not isinstance(value, str) or not value.strip():
                problem = "is missing" if key not in record else f"must be a non-empty string, got {value!r}"
                raise DataError(f"{record['_where']}: '{key}' {problem}")
        if not isinstance(record.get("input", ""), str | type(None)):
            raise DataError(f"{record['_where']}: 'input' must be a string")


def build_prompt(record: dict[str, Any]) -> str:
    """BELLE's prompt; a non-empty `input` follows the instruction on a new line."""
    instruction = record["instruction"]
    if record.get("input"):
        instruction = f"{instruction}\n{record['input']}"
    return BELLE_PROMPT.format(instruction=instruction)


def build_supervised_example(
    record: dict[str, Any], tokenizer: Any, cutoff_len: int, train_on_inputs: bool = False
) -> dict[str, list[int]] | None:
    """Token ids and labels for one record, or None when the prompt leaves no response token.

    Layout: [bos if the tokenizer adds one] prompt response eos, cut to `cutoff_len`. Labels copy the
    ids on the response and its eos, and are IGNORE_INDEX on the prompt unless `train_on_inputs`.
    A response cut by `cutoff_len` loses its eos: the model must not learn to stop mid-answer.
    """
    prompt_ids = encode_prompt(record, tokenizer)
    response_ids = tokenizer(record["output"], add_special_tokens=False)["input_ids"]
    input_ids = (prompt_ids + response_ids + [tokenizer.eos_token_id])[:cutoff_len]
    if len(input_ids) <= len(prompt_ids):
        return None
    if train_on_inputs:
        labels = list(input_ids)
    else:
        labels = [IGNORE_INDEX] * len(prompt_ids) + input_ids[len(prompt_ids) :]
    return {"input_ids": input_ids, "attention_mask": [1] * len(input_ids), "labels": labels}


def split_train_dev(records: list[Any], dev_size: int, seed: int) -> tuple[list[Any], list[Any]]:
    """A seeded random split: the same records, seed and size always give the same two lists."""
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    dev_index = set(order[:dev_size])
    train = [r for i, r in enumerate(records) if i not in dev_index]
    dev = [r for i, r in enumerate(records) if i in dev_index]
    return train, dev


def write_json_lines(records: list[dict[str, Any]], path: str | Path) -> None:
    """JSON lines with readable Chinese (ensure_ascii=False); internal keys like `_where` are dropped."""
    with open(path, "w", encoding="utf-8") as out:
        for record in records:
            clean = {k: v for k, v in record.items() if not k.startswith("_")}
            out.write(json.dumps(clean, ensure_ascii=False) + "\n")


def encode_prompt(record: dict[str, Any], tokenizer: Any) -> list[int]:
    """The prompt's token ids exactly as training saw them: bos if the tokenizer adds one, no eos.

    Generation must start from the same ids that `build_supervised_example` put before the response.
    """
    prompt_ids = tokenizer(build_prompt(record), add_special_tokens=True)["input_ids"]
    if tokenizer.eos_token_id is not None and prompt_ids and prompt_ids[-1] == tokenizer.eos_token_id:
        prompt_ids = prompt_ids[:-1]  # some tokenizers append eos by default; it belongs after the response
    return prompt_ids
