"""The SFT example is exact to the token: prompt masked, response and one eos trained, cut correctly."""

from __future__ import annotations

import pytest

from common.data import IGNORE_INDEX, build_prompt, build_supervised_example
from common.modeling import load_tokenizer

RECORD = {
    "instruction": "把下面的句子翻译成英文。",
    "input": "今天天气很好。",
    "output": "The weather is nice today.",
}


@pytest.fixture(scope="module", params=["tiny-llama", "tiny-bloom"])
def tokenizer(request, tiny_models):
    return load_tokenizer(str(tiny_models / request.param))


def test_prompt_is_belle_format():
    assert build_prompt(RECORD) == "Human: 把下面的句子翻译成英文。\n今天天气很好。\n\nAssistant: "
    assert build_prompt({"instruction": "Hi", "output": "x"}) == "Human: Hi\n\nAssistant: "


def test_ids_and_label_mask_are_exact(tokenizer):
    example = build_supervised_example(RECORD, tokenizer, cutoff_len=1024)
    prompt_ids = tokenizer(build_prompt(RECORD), add_special_tokens=False)["input_ids"]
    response_ids = tokenizer(RECORD["output"], add_special_tokens=False)["input_ids"]
    bos = [tokenizer.bos_token_id] if "llama" in tokenizer.name_or_path else []  # LLaMA adds bos, BLOOM not
    prefix = bos + prompt_ids

    assert example["input_ids"] == prefix + response_ids + [tokenizer.eos_token_id]
    assert example["labels"] == [IGNORE_INDEX] * len(prefix) + response_ids + [tokenizer.eos_token_id]
    assert example["attention_mask"] == [1] * len(example["input_ids"])
    # What is trained decodes to exactly the response followed by one eos, and nothing of the prompt.
    trained = [t for t in example["labels"] if t != IGNORE_INDEX]
    assert tokenizer.decode(trained) == RECORD["output"] + tokenizer.eos_token
    assert tokenizer.decode(example["input_ids"][len(bos) : len(prefix)]) == build_prompt(RECORD)


def test_train_on_inputs_trains_every_token(tokenizer):
    example = build_supervised_example(RECORD, tokenizer, cutoff_len=1024, train_on_inputs=True)
    assert example["labels"] == example["input_ids"]


def test_cutoff_cuts_the_response_and_its_eos(tokenizer):
    full = build_supervised_example(RECORD, tokenizer, cutoff_len=1024)
    prompt_len = full["labels"].count(IGNORE_INDEX)
    cut = build_supervised_example(RECORD, tokenizer, cutoff_len=prompt_len + 3)
    assert cut["input_ids"] == full["input_ids"][: prompt_len + 3]
    assert cut["labels"] == full["labels"][: prompt_len + 3]
    assert tokenizer.eos_token_id not in cut["input_ids"]  # a cut answer must not teach stopping there
    assert sum(t != IGNORE_INDEX for t in cut["labels"]) == 3


def test_prompt_longer_than_cutoff_gives_no_example(tokenizer):
    full = build_supervised_example(RECORD, tokenizer, cutoff_len=1024)
    prompt_len = full["labels"].count(IGNORE_INDEX)
    assert build_supervised_example(RECORD, tokenizer, cutoff_len=prompt_len) is None
    assert build_supervised_example(RECORD, tokenizer, cutoff_len=prompt_len + 1) is not None
