"""Packing: several tokenised examples per row, each attending only to itself.

A packed row is the examples' tokens one after another, with `position_ids` that restart at 0 for each
example. Given position ids and no attention mask, transformers builds the block-diagonal causal mask itself
(masking_utils.find_packed_sequence_indices) for sdpa, eager and flex attention, and flash attention reads the
same position ids as variable-length sequences. So no example sees another, and its positions are those it
has alone.

The loss also stays the unpacked one: the label of each example's first token is set to -100, since in the
unpacked run nothing predicts the first token (the causal shift drops it), while in a row it would be
predicted from the previous example's last token.

Rows are filled by best-fit decreasing (longest example first, into the fullest row it still fits), which
leaves rows nearly full, so few padding tokens are computed.
"""

from __future__ import annotations

from typing import Any

IGNORE_INDEX = -100


def check_model_supports_packing(model: Any) -> None:
    """Packing relies on position ids to keep examples apart; refuse models whose attention has none (BLOOM's
    and ALiBi Falcon's positions come from the attention mask), which would silently attend across examples."""
    import inspect

    takes_positions = "position_ids" in inspect.signature(type(model).forward).parameters
    if not takes_positions or getattr(model.config, "alibi", False):
        from common.config import ConfigError

        raise ConfigError(
            f"packing needs a model with position ids (LLaMA, Qwen, Mistral, ...); {model.config.model_type} "
            "uses ALiBi, which cannot keep packed examples apart: set packing false (group_by_length true keeps "
            "padding small instead)"
        )


class _FreeSpaceIndex:
    """Rows grouped by free space, with "the smallest free space >= n" found in O(log capacity).

    A segment tree over free-space values 0..capacity whose leaves say whether some row has that much room.
    """

    def __init__(self, capacity: int) -> None:
        self.size = 1
        while self.size < capacity + 1:
            self.size *= 2
        self.tree = [0] * (2 * self.size)
        self.rows_with_space: dict[int, list[int]] = {}

    def _set(self, space: int, present: bool) -> None:
        node = self.size + space
        self.tree[node] = int(present)
        node //= 2
        while node:
            self.tree[node] = self.tree[2 * node] | self.tree[2 * node + 1]
            node //= 2

    def add(self, space: int, row: int) -> None:
        rows = self.rows_with_space.setdefault(space, [])
        rows.append(row)
        if len(rows) == 1:
            self._set(space, True)

    def pop_smallest_at_least(self, need: int) -> tuple[int, int] | None:
        """(free space, row) of a row with the least free space >= need, removed from the index."""
        space = self._first_present(1, 0, self.size - 1, need)
        if space is None:
            return None
        rows = self.rows_with_space[space]
        row = rows.pop()
        if not rows:
            self._set(space, False)
        return space, row

    def _first_present(self, node: int, low: int, high: int, need: int) -> int | None:
        if high < need or not self.tree[node]:
            return None
        if low == high:
            return low
        middle = (low + high) // 2
        found = self._first_present(2 * node, low, middle, need)
        return found if found is not None else self._first_present(2 * node + 1, middle + 1, high, need)


def plan_rows(lengths: list[int], capacity: int) -> list[list[int]]:
    """Example indices per row, by best-fit decreasing; every example fits (lengths <= capacity).

    Deterministic: ties are broken by the example's index, so the same data gives the same rows.
    """
    if any(length > capacity for length in lengths):
        raise ValueError(f"an example is longer than the row ({max(lengths)} > {capacity} tokens)")
    rows: list[list[int]] = []
    free = _FreeSpaceIndex(capacity)
    for index in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        length = lengths[index]
        found = free.pop_smallest_at_least(length)
        if found is None:
            rows.append([index])
            space, row = capacity - length, len(rows) - 1
        else:
            space, row = found
            rows[row].append(index)
            space -= length
        free.add(space, row)
    return rows


def pack_examples(examples: Any, capacity: int) -> Any:
    """A datasets.Dataset of packed rows (input_ids, labels, position_ids) from tokenised examples."""
    from datasets import Dataset

    input_ids, labels = examples["input_ids"], examples["labels"]
    rows = plan_rows([len(ids) for ids in input_ids], capacity)
    packed: dict[str, list[list[int]]] = {"input_ids": [], "labels": [], "position_ids": []}
    for members in rows:
        row_ids: list[int] = []
        row_labels: list[int] = []
        row_positions: list[int] = []
        for index in sorted(members):  # within a row, the data's own order
            ids = input_ids[index]
            row_ids += ids
            row_labels += [IGNORE_INDEX] + labels[index][1:]
            row_positions += range(len(ids))
        packed["input_ids"].append(row_ids)
        packed["labels"].append(row_labels)
        packed["position_ids"].append(row_positions)
    return Dataset.from_dict(packed)


def positions_restarting_after(input_ids: list[int], separator_id: int) -> list[int]:
    """Position ids that restart after each separator (pre-training blocks: eos ends each document)."""
    positions, position = [], 0
    for token in input_ids:
        positions.append(position)
        position = 0 if token == separator_id else position + 1
    return positions


def as_long_tensors(rows: list[dict[str, list[int]]]) -> dict[str, Any]:
    """Rows of equal length, each {column: ids}, as one [rows, length] long tensor per column."""
    import torch

    return {key: torch.tensor([row[key] for row in rows], dtype=torch.long) for key in rows[0]}


class PackedCollator:
    """Pads packed rows to one length (cutoff_len by default: fixed shapes let compiled kernels compile once).

    Returns no attention mask to the model: transformers then derives the per-example mask from position_ids.
    `attention_mask` is still put in the batch for the Trainer's count of real tokens and removed before the
    forward by `strip_packed_attention_mask`.
    """

    def __init__(self, pad_token_id: int, row_length: int | None) -> None:
        self.pad_token_id = pad_token_id
        self.row_length = row_length

    def __call__(self, rows: list[dict[str, list[int]]]) -> dict[str, Any]:
        width = self.row_length or max(len(row["input_ids"]) for row in rows)
        padded = []
        for row in rows:
            pad = width - len(row["input_ids"])
            padded.append({
                "input_ids": row["input_ids"] + [self.pad_token_id] * pad,
                "labels": row["labels"] + [IGNORE_INDEX] * pad,
                # Padding continues as one more "example" of its own (positions 0, 1, ...) that nothing sees.
                "position_ids": row["position_ids"] + list(range(pad)),
                "attention_mask": [1] * len(row["input_ids"]) + [0] * pad,
            })  # fmt: skip
        return as_long_tensors(padded)


class DocumentBlockCollator:
    """Pre-training blocks with packing on: each document in a block (eos ends one) attends only to itself.

    Positions restart after every eos, and the first token of each following document is not predicted from
    the document before it (label -100), so each document's loss is the one it has alone in the block.
    """

    def __init__(self, eos_token_id: int) -> None:
        self.eos_token_id = eos_token_id

    def __call__(self, blocks: list[dict[str, list[int]]]) -> dict[str, Any]:
        rows = []
        for block in blocks:
            ids = list(block["input_ids"])
            positions = positions_restarting_after(ids, self.eos_token_id)
            starts = [i > 0 and p == 0 for i, p in enumerate(positions)]  # a later document's first token
            labels = [IGNORE_INDEX if start else t for t, start in zip(ids, starts, strict=True)]
            rows.append({"input_ids": ids, "labels": labels, "position_ids": positions,
                         "attention_mask": [1] * len(ids)})  # fmt: skip
        return as_long_tensors(rows)


def strip_packed_attention_mask(inputs: dict[str, Any]) -> dict[str, Any]:
    """The model's inputs for a packed batch: without attention_mask, so the mask follows position_ids."""
    if "position_ids" in inputs:
        inputs = {key: value for key, value in inputs.items() if key != "attention_mask"}
    return inputs
