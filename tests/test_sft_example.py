"""The SFT example is exact to the token, through the path finetune.py uses (normalise_record ->
encode_conversation with the default `belle` template): prompt masked, answer and one eos trained,
and cut the way the README says."""

from __future__ import annotations

import pytest

from common.data import IGNORE_INDEX, DatasetSpec, normalise_record
from common.modeling import load_tokenizer
from common.templates import encode_conversation, get_template

RECORD = {
    "instruction": "把下面的句子翻译成英文。",
    "input": "今天天气很好。",
    "output": "The weather is nice today.",
}
PROMPT = (
    "Human: 把下面的句子翻译成英文。\n今天天气很好。\n\nAssistant: "  # BELLE's format, written out by hand
)


def training_example(record, tokenizer, cutoff_len, train_on_inputs=False):
    normalised = normalise_record(record, DatasetSpec(name="test", file_name="test.json"))
    return encode_conversation(
        get_template("belle"),
        tokenizer,
        normalised["messages"],
        normalised["system"],
        cutoff_len,
        train_on_inputs,
    )


@pytest.fixture(scope="module", params=["tiny-llama", "tiny-bloom"])
def tokenizer(request, tiny_models):
    return load_tokenizer(str(tiny_models / request.param))


def expected_parts(tokenizer, record=RECORD, prompt=PROMPT):
    """Prompt + answer tokenised as one text, split after "Assistant:": the space after it is glued to the
    answer's first word (" The"), so it is trained with the answer (common/templates.py)."""
    bos = [tokenizer.bos_token_id] if "llama" in tokenizer.name_or_path else []  # LLaMA adds bos, BLOOM not
    whole = tokenizer(prompt + record["output"], add_special_tokens=False)["input_ids"]
    head = tokenizer(prompt.rstrip(" "), add_special_tokens=False)["input_ids"]
    assert whole[: len(head)] == head
    return bos + head, whole[len(head) :] + [tokenizer.eos_token_id]


def test_ids_and_label_mask_are_exact(tokenizer):
    example = training_example(RECORD, tokenizer, cutoff_len=1024)
    prompt_ids, answer_ids = expected_parts(tokenizer)
    assert example["input_ids"] == prompt_ids + answer_ids
    assert example["labels"] == [IGNORE_INDEX] * len(prompt_ids) + answer_ids
    assert example["attention_mask"] == [1] * len(example["input_ids"])
    # What is trained decodes to exactly the answer (with the space before it) followed by one eos, and
    # nothing else of the prompt.
    trained = [t for t in example["labels"] if t != IGNORE_INDEX]
    assert tokenizer.decode(trained) == " " + RECORD["output"] + tokenizer.eos_token


def test_train_on_inputs_trains_every_token(tokenizer):
    example = training_example(RECORD, tokenizer, cutoff_len=1024, train_on_inputs=True)
    assert example["labels"] == example["input_ids"]


def test_a_long_answer_is_cut_and_loses_its_eos(tokenizer):
    record = dict(RECORD, output="The weather is nice today. " * 20)
    prompt_ids, answer_ids = expected_parts(tokenizer, record)
    cutoff = 2 * len(prompt_ids) + 5  # the prompt needs at most half: it stays whole, the answer is cut
    example = training_example(record, tokenizer, cutoff_len=cutoff)
    kept = cutoff - len(prompt_ids)
    assert example["input_ids"] == prompt_ids + answer_ids[:kept]
    assert example["labels"] == [IGNORE_INDEX] * len(prompt_ids) + answer_ids[:kept]
    assert tokenizer.eos_token_id not in example["input_ids"]  # a cut answer must not teach stopping there


def test_a_long_prompt_is_cut_and_a_short_answer_kept_whole(tokenizer):
    prompt_ids, answer_ids = expected_parts(tokenizer)
    cutoff = len(prompt_ids)  # the prompt alone would fill it; the short answer takes its share first
    example = training_example(RECORD, tokenizer, cutoff_len=cutoff)
    assert example["input_ids"] == prompt_ids[: cutoff - len(answer_ids)] + answer_ids
    assert [t for t in example["labels"] if t != IGNORE_INDEX] == answer_ids


def test_too_small_a_cutoff_gives_no_example(tokenizer):
    assert training_example(RECORD, tokenizer, cutoff_len=0) is None
