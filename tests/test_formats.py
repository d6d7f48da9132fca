"""Every supported data format normalises to the same conversation shape, and bad records are
reported with file, line and reason (or skipped and counted with --skip_bad_records)."""

from __future__ import annotations

import json
import logging

import pytest

from common.data import (
    DataError,
    DatasetSpec,
    load_normalised,
    load_preference_records,
    spec_from_path,
)


def write_lines(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def load(path, **kw):
    return load_normalised(spec_from_path(path), **kw)


def turns(*pairs):
    return [{"role": r, "content": c} for r, c in pairs]


def test_alpaca_with_input_system_and_history(tmp_path):
    path = write_lines(tmp_path / "a.json", [
        {"instruction": "翻译", "input": "你好", "output": "Hello", "system": "S",
         "history": [["q1", "a1"], ["q2", "a2"]]},
    ])  # fmt: skip
    [record] = load(path)
    assert record["system"] == "S"
    assert record["messages"] == turns(("user", "q1"), ("assistant", "a1"), ("user", "q2"),
                                       ("assistant", "a2"), ("user", "翻译\n你好"), ("assistant", "Hello"))  # fmt: skip
    assert record["_where"] == f"{path}:1"


def test_belle_multiturn_packed_dialogue_is_split_into_turns(tmp_path):
    # BelleGroup/multiturn_chat_0.8M: history and the last question packed into `instruction`.
    row = {"instruction": "Human:你好\nAssistant:你好！有什么可以帮你？\nHuman:讲个笑话\nAssistant:", "input": "",
           "output": "好的，……"}  # fmt: skip
    [record] = load(write_lines(tmp_path / "m.json", [row]))
    assert record["messages"] == turns(("user", "你好"), ("assistant", "你好！有什么可以帮你？"),
                                       ("user", "讲个笑话"), ("assistant", "好的，……"))  # fmt: skip


def test_sharegpt_and_openai_messages_with_system(tmp_path):
    share = write_lines(tmp_path / "s.json", [{"conversations": [
        {"from": "system", "value": "S"}, {"from": "human", "value": "q1"}, {"from": "gpt", "value": "a1"},
        {"from": "human", "value": "q2"}, {"from": "gpt", "value": "a2"}]}])  # fmt: skip
    openai = write_lines(tmp_path / "o.json", [{"messages": [
        {"role": "system", "content": "S"}, {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1"}, {"role": "user", "content": "q2"},
        {"role": "assistant", "content": "a2"}]}])  # fmt: skip
    expected = {"system": "S", "messages": turns(("user", "q1"), ("assistant", "a1"), ("user", "q2"),
                                                 ("assistant", "a2"))}  # fmt: skip
    for path in (share, openai):
        [record] = load(path)
        assert {k: record[k] for k in expected} == expected
    # Custom tags, as dataset_info.json's `tags` give them.
    custom = write_lines(
        tmp_path / "c.json", [{"dialog": [{"who": "U", "text": "q"}, {"who": "B", "text": "a"}]}]
    )
    spec = DatasetSpec(name="c", file_name=str(custom), formatting="sharegpt", columns={"messages": "dialog"},
                       tags={"role_tag": "who", "content_tag": "text", "user_tag": "U", "assistant_tag": "B"})  # fmt: skip
    assert load_normalised(spec)[0]["messages"] == turns(("user", "q"), ("assistant", "a"))


def test_json_array_and_bom_and_text(tmp_path):
    array = tmp_path / "arr.json"
    array.write_text("\ufeff" + json.dumps([{"instruction": "i", "output": "o"}] * 2), encoding="utf-8")
    records = load(array)
    assert len(records) == 2 and records[1]["_where"] == f"{array}: item 1"
    text = tmp_path / "t.txt"
    text.write_text("doc one\n\ndoc two\n", encoding="utf-8")
    assert [r["text"] for r in load(text)] == ["doc one", "doc two"]


def test_preference_pairs_in_three_formats(tmp_path):
    columns = write_lines(
        tmp_path / "p.json", [{"instruction": "q", "input": "", "chosen": "good", "rejected": "bad"}]
    )
    alpaca = write_lines(tmp_path / "a.json", [{"instruction": "q", "output": ["good", "bad"]}])
    hh = write_lines(tmp_path / "h.json", [{
        "chosen": "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: q\n\nAssistant: good",
        "rejected": "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: q\n\nAssistant: bad"}])  # fmt: skip
    for path, messages in [
        (columns, turns(("user", "q"))),
        (alpaca, turns(("user", "q"))),
        (hh, turns(("user", "hi"), ("assistant", "hello"), ("user", "q"))),
    ]:
        [pair] = load_preference_records(path)
        assert (pair["messages"], pair["chosen"], pair["rejected"]) == (messages, "good", "bad")
    assert len(load_preference_records("sample_preference")) == 120


BAD_CASES = [
    ('{"instruction": "a", "output": "b"}\n{"instruction": "a", "output": \n', "b.json:2: invalid JSON line"),
    ('{"instruction": "a"}\n', "b.json:1: 'output' is missing"),
    ('{"instruction": null, "output": "b"}\n', "b.json:1: 'instruction' is null"),
    ('{"instruction": "a", "output": "  "}\n', "b.json:1: turn 1: empty response"),
    ('{"conversations": [{"from": "human", "value": "a"}, {"from": "human", "value": "b"}]}\n',
     "b.json:1: turn 1 is 'user' where 'assistant' was expected"),
    ("", "b.json: the file is empty"),
]  # fmt: skip


@pytest.mark.parametrize(("content", "message"), BAD_CASES)
def test_bad_records_name_file_line_and_reason(tmp_path, content, message):
    path = tmp_path / "b.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as err:
        load(path)
    assert message in str(err.value)


def test_invalid_utf8_names_the_line(tmp_path):
    path = tmp_path / "b.json"
    path.write_bytes(b'{"instruction": "a", "output": "b"}\n{"instruction": "\xff", "output": "b"}\n')
    with pytest.raises(DataError, match=r"b.json:2: not valid UTF-8"):
        load(path)


def test_many_problems_are_listed_then_skipped_and_counted(tmp_path, caplog):
    rows = (
        [{"instruction": "ok", "output": "fine"}] * 3
        + [{"instruction": "x"}] * 12
        + [{"instruction": "y", "output": ""}]
    )
    path = write_lines(tmp_path / "b.json", rows)
    path.write_text(path.read_text() + "{broken\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        load(path)
    text = str(err.value)
    assert "14 bad record(s); pass --skip_bad_records" in text
    assert f"{path}:4: 'output' is missing" in text and "... and 4 more" in text
    with caplog.at_level(logging.WARNING):
        kept = load(path, skip_bad_records=True)
    assert len(kept) == 3
    assert "skipped 14 bad record(s)" in caplog.text
    assert "12 × 'output' is missing" in caplog.text and "invalid JSON line" in caplog.text


def test_inspection_counts_and_marks_trained_tokens(tiny_llama):
    from common.data import inspect_conversations, mark_trained
    from common.modeling import load_tokenizer
    from common.templates import encode_conversation, get_template

    tokenizer = load_tokenizer(str(tiny_llama))
    messages = turns(("user", "Hi"), ("assistant", "Hello!"), ("user", "2+2?"), ("assistant", "4"))
    example = encode_conversation(get_template("belle"), tokenizer, messages)
    assert (
        mark_trained(example, tokenizer)
        == "<s>Human: Hi\n\nAssistant:【 Hello!</s>】Human: 2+2?\n\nAssistant:【 4</s>】"
    )
    [row] = inspect_conversations([{"messages": messages, "_source": "x"}], tokenizer, "belle", cutoff_len=10)
    trained = sum(label != -100 for label in example["labels"])
    assert row == {"source": "x", "turns": 2, "prompt_tokens": len(example["input_ids"]) - trained,
                   "response_tokens": trained, "truncated": True}  # fmt: skip


def test_duplicates_per_source_and_dev_prompts_in_training_data(tmp_path):
    from common.data import duplicate_counts, overlap_warning, prompt_overlap

    rows = [{"instruction": "Say  hi", "output": "hi"}, {"instruction": "Say hi ", "output": "hi"},
            {"instruction": "Say hi", "output": "hello"}, {"instruction": "other", "output": "x"}]  # fmt: skip
    train = load(write_lines(tmp_path / "train.json", rows))
    counts = duplicate_counts(train)["train.json"]
    # Records are compared as normalised (exact text); prompts with whitespace normalised.
    assert counts == {"records": 4, "duplicate_records": 0, "duplicate_prompts": 2}
    assert duplicate_counts(train + train[:1])["train.json"]["duplicate_records"] == 1
    dev = load(write_lines(tmp_path / "dev.json", [{"instruction": "say hi", "output": "a"},
                                                   {"instruction": "Say\u3000 hi", "output": "b"},
                                                   {"instruction": "other", "output": "c"}]))  # fmt: skip
    overlap = prompt_overlap(dev, train)
    # Case counts; the ideographic space and the double space do not.
    assert (overlap["dev"], overlap["in_training"], overlap["training"]) == (3, 2, 4)
    assert overlap_warning(overlap).startswith(
        "2 of 3 dev prompts (67%) also occur in the 4 training records"
    )
    assert overlap_warning(prompt_overlap(dev[:1], train)) is None
