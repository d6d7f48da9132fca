"""Preference pairs tokenised exactly as SFT renders the same conversation (RM, DPO and PPO share this)."""

from __future__ import annotations

import pytest

from common.data import load_preference_records, tokenise_preferences
from common.modeling import load_tokenizer
from common.templates import (
    encode_conversation,
    encode_generation_prompt,
    encode_piece,
    encode_preference_pair,
    get_template,
)


@pytest.fixture(scope="module", params=["tiny-llama", "tiny-bloom"])
def tokenizer(request, tiny_models):
    return load_tokenizer(str(tiny_models / request.param))


MESSAGES = [
    {"role": "user", "content": "你好"},
    {"role": "assistant", "content": "你好！有什么可以帮你？"},
    {"role": "user", "content": "Name a prime number."},
]


@pytest.mark.parametrize("template_name", ["belle", "chatml", "llama3"])
def test_pair_is_the_sft_prompt_and_answer(tokenizer, template_name):
    template = get_template(template_name)
    pair = encode_preference_pair(template, tokenizer, MESSAGES, "7", "Ten.", cutoff_len=1024)
    assert pair["prompt_ids"] == encode_generation_prompt(template, tokenizer, MESSAGES)
    for answer, ids in (("7", pair["chosen_ids"]), ("Ten.", pair["rejected_ids"])):
        sft = encode_conversation(template, tokenizer, [*MESSAGES, {"role": "assistant", "content": answer}])
        # SFT may show untrained tokens after the last answer (chatml's closing newline); a pair stops at the
        # answer's trained end
        shown = len(pair["prompt_ids"]) + len(ids)
        assert pair["prompt_ids"] + ids == sft["input_ids"][:shown]
        assert all(label == -100 for label in sft["labels"][shown:])
        # the answer is exactly the last trained span of SFT, ending on eos
        trained = [t for t, label in zip(sft["input_ids"], sft["labels"], strict=True) if label != -100]
        assert trained[-len(ids) :] == ids
        end = (
            [tokenizer.eos_token_id]
            if not template.stop_words
            else encode_piece(template.stop_words[0], tokenizer)
        )
        assert ids[-len(end) :] == end  # the answer ends as SFT taught it to: eos, or the turn's end marker


def test_long_pair_shares_the_budget_and_cuts_from_the_end(tokenizer):
    template = get_template("belle")
    long_answer = "一二三四五六七八九十" * 20
    full = encode_preference_pair(template, tokenizer, MESSAGES[2:], long_answer, "short", cutoff_len=10_000)
    cut = encode_preference_pair(template, tokenizer, MESSAGES[2:], long_answer, "short", cutoff_len=40)
    assert len(cut["prompt_ids"]) + len(cut["chosen_ids"]) == 40
    assert cut["prompt_ids"] == full["prompt_ids"]  # a short prompt is kept whole
    assert cut["chosen_ids"] == full["chosen_ids"][: len(cut["chosen_ids"])]
    assert cut["chosen_ids"][-1] != tokenizer.eos_token_id  # a cut answer does not pretend to end
    assert cut["rejected_ids"] == full["rejected_ids"]  # the short answer fits whole
    assert encode_preference_pair(template, tokenizer, MESSAGES[2:], "a", "b", cutoff_len=0) is None


def test_sample_preference_data_tokenises(tokenizer):
    records = load_preference_records("sample_preference", "data_dir")
    pairs = tokenise_preferences(records, tokenizer, "belle", cutoff_len=256)
    assert len(pairs) == len(records) == 120
    assert pairs.column_names == ["prompt_ids", "chosen_ids", "rejected_ids"]
    first = records[0]
    expected = encode_preference_pair(get_template("belle"), tokenizer, first["messages"], first["chosen"],
                                      first["rejected"], first.get("system"), 256)  # fmt: skip
    assert pairs[0] == expected
    assert all(len(p) + max(len(c), len(r)) <= 256
               for p, c, r in zip(pairs["prompt_ids"], pairs["chosen_ids"], pairs["rejected_ids"], strict=True))  # fmt: skip
