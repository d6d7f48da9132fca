"""LLaMA-Factory's data works unedited: a dataset_info.json with every key it documents loads, entries we
cannot honour offline fail only when used (one line each), its pre-training entries read as text, and a
file's format is the majority of its records, so a broken first line or a non-UTF-8 line is one counted
bad record with --skip_bad_records."""

from __future__ import annotations

import json
import logging
import re

import pytest

from common.data import (
    DataError,
    load_dataset_info,
    load_normalised,
    load_preference_records,
    load_tokenised,
    resolve_specs,
    spec_from_path,
    tokenise_preferences,
)
from common.modeling import load_tokenizer

TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
        "observation_tag": "observation", "function_tag": "function_call", "system_tag": "system"}  # fmt: skip
# Written for this test in LLaMA-Factory's format (its data/README.md), one entry per kind of source.
REGISTRY = {
    "hub_everywhere": {"hf_hub_url": "example/alpaca_zh", "ms_hub_url": "example/alpaca_zh",
                       "om_hub_url": "example/alpaca_zh", "subset": "default", "split": "train",
                       "folder": "data", "num_samples": 10},
    "modelscope_only": {"ms_hub_url": "example/ms_only"},
    "modelers_only": {"om_hub_url": "example/om_only"},
    "by_script": {"script_url": "my_script"},
    "in_the_cloud": {"cloud_file_name": "s3://bucket/data.json"},
    "local_alpaca": {"file_name": "alpaca.json", "load_from": "file", "formatting": "alpaca", "ranking": False,
                     "num_samples": 3,
                     "columns": {"prompt": "q", "query": "ctx", "response": "a", "history": "past",
                                 "system": "sys"}},
    "local_sharegpt": {"file_name": "chat.json", "formatting": "sharegpt",
                       "columns": {"messages": "conversations", "system": "system", "tools": "tools"},
                       "tags": TAGS},
    "local_preference": {"file_name": "pref.json", "ranking": True,
                         "columns": {"prompt": "instruction", "chosen": "good", "rejected": "bad"}},
    "local_kto": {"file_name": "alpaca.json", "columns": {"prompt": "q", "response": "a", "kto_tag": "ok"}},
    "multimodal": {"file_name": "alpaca.json", "formatting": "sharegpt",
                   "columns": {"messages": "conversations", "images": "images", "videos": "videos",
                               "audios": "audios"}},
    "pretrain_text": {"file_name": "docs.jsonl", "columns": {"prompt": "body"}},
}  # fmt: skip


def write_lines(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def lf_dir(tmp_path):
    (tmp_path / "dataset_info.json").write_text(json.dumps(REGISTRY, indent=2), encoding="utf-8")
    write_lines(tmp_path / "alpaca.json", [
        {"q": f"question {i}", "ctx": "", "a": f"answer {i}", "sys": "be kind", "ok": i % 2 == 0,
         "past": [["hi", "hello"]]} for i in range(5)])  # fmt: skip
    write_lines(tmp_path / "chat.json", [{"conversations": [
        {"from": "system", "value": "sys"}, {"from": "human", "value": "weather?"},
        {"from": "function_call", "value": '{"name": "w", "arguments": {}}'},
        {"from": "observation", "value": "sunny"}, {"from": "gpt", "value": "Sunny."}],
        "tools": '[{"name": "w"}]'}])  # fmt: skip
    write_lines(tmp_path / "pref.json", [{"instruction": "q", "good": "yes", "bad": "no"}])
    write_lines(tmp_path / "docs.jsonl", [{"body": "first document"}, {"body": "second document"}])
    return tmp_path


def test_every_llamafactory_key_loads_and_local_entries_work(lf_dir):
    registry = load_dataset_info(lf_dir)
    assert set(registry) == set(REGISTRY)
    alpaca = load_normalised(registry["local_alpaca"], lf_dir)
    assert len(alpaca) == 3 and len({r["_where"] for r in alpaca}) == 3  # num_samples: 3 of 5, no repeats
    assert alpaca[0]["system"] == "be kind" and alpaca[0]["messages"][:2] == [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]  # fmt: skip
    [chat] = load_normalised(registry["local_sharegpt"], lf_dir)
    assert chat["system"] == "sys" and chat["tools"] == '[{"name": "w"}]'
    assert [m["role"] for m in chat["messages"]] == ["user", "function_call", "observation", "assistant"]
    [pair] = load_preference_records("local_preference", lf_dir)
    assert (pair["chosen"], pair["rejected"]) == ("yes", "no")
    kto = load_normalised(registry["local_kto"], lf_dir)
    assert [r["label"] for r in kto] == [True, False, True, False, True]
    text = load_normalised(registry["pretrain_text"], lf_dir)  # LF's pre-training entry: prompt = text
    assert registry["pretrain_text"].formatting == "text"
    assert [r["text"] for r in text] == ["first document", "second document"]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("modelscope_only", "dataset 'modelscope_only': ms_hub_url 'example/ms_only' is on the ModelScope hub"),
        ("modelers_only", "dataset 'modelers_only': om_hub_url 'example/om_only' is on the Modelers (OpenMind)"),
        ("by_script", "dataset 'by_script': script_url 'my_script' is a dataset loading script, not run here"),
        ("in_the_cloud", "dataset 'in_the_cloud': cloud_file_name 's3://bucket/data.json' is not read here"),
        ("multimodal", "dataset 'multimodal': columns images, videos, audios hold multimodal input"),
        ("hub_everywhere", "dataset 'hub_everywhere': cannot load 'example/alpaca_zh' from the Hugging Face hub"),
    ],
)  # fmt: skip
def test_entries_we_cannot_honour_fail_when_used_in_one_line(lf_dir, name, message):
    [spec] = resolve_specs(name, None, lf_dir)
    with pytest.raises(DataError) as err:
        load_normalised(spec, lf_dir)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_truly_unknown_key_is_still_an_error_naming_the_entry(lf_dir):
    for entry, message in [
        ({"file_name": "a.json", "colums": {}}, "dataset 'typo': unknown key(s) ['colums']"),
        ({"file_name": "a.json", "columns": {"answer": "x"}}, "dataset 'typo': unknown column key(s) ['answer']"),
        ({"file_name": "a.json", "tags": {"bot_tag": "x"}}, "dataset 'typo': unknown tag key(s) ['bot_tag']"),
        ({"file_name": "a.json", "load_from": "ftp"}, "dataset 'typo': load_from must be one of file, hf_hub"),
    ]:  # fmt: skip
        (lf_dir / "dataset_info.json").write_text(json.dumps(REGISTRY | {"typo": entry}))
        with pytest.raises(DataError, match=re.escape(message)):
            load_dataset_info(lf_dir)


GOOD_SHAREGPT = {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]}
GOOD_OPENAI = {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"},
                            {"role": "assistant", "content": "hello"}]}  # fmt: skip
GOOD_PREFERENCE = {"instruction": "q", "input": "", "chosen": "good", "rejected": "bad"}
NOT_UTF8 = b'{"instruction": "\xff\xfe", "output": "x"}'


def broken_file(path, good, count=6):
    """A broken FIRST line, good records, one line that is not UTF-8, one alpaca record (another layout
    of the same kind of data: kept) and one record of another kind (counted as bad)."""
    other_kind = {"text": "a pre-training document"}
    lines = [b'{"conversations": [{"from": "human",'] + [json.dumps(good).encode()] * count
    lines[3:3] = [NOT_UTF8]
    if "chosen" not in good:
        lines.append(json.dumps({"instruction": "alpaca too", "output": "kept"}).encode())
    lines.append(json.dumps(other_kind).encode())
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


@pytest.mark.parametrize(
    "good", [GOOD_SHAREGPT, GOOD_OPENAI, GOOD_PREFERENCE], ids=["sharegpt", "openai", "pref"]
)
def test_broken_first_line_and_non_utf8_line_are_counted_bad_records(tmp_path, good, caplog):
    path = broken_file(tmp_path / "data.json", good)
    spec = spec_from_path(path)
    assert spec.kind == ("preference" if "chosen" in good else "sft")
    assert spec.formatting == ("alpaca" if "chosen" in good else "sharegpt")
    with pytest.raises(DataError) as err:
        load_normalised(spec)
    assert "3 bad record(s); pass --skip_bad_records" in str(err.value)
    assert f"{path}:1: invalid JSON line" in str(err.value) and f"{path}:4: not valid UTF-8" in str(err.value)
    assert "a plain text record in a file of" in str(err.value)
    with caplog.at_level(logging.WARNING):
        kept = load_normalised(spec, skip_bad_records=True)
    assert len(kept) == (6 if "chosen" in good else 7)  # every good record, the alpaca one too
    assert "skipped 3 bad record(s)" in caplog.text and "1 × not valid UTF-N" in caplog.text


def test_broken_files_tokenise_for_training(tmp_path, tiny_llama):
    tokenizer = load_tokenizer(str(tiny_llama))
    for good in (GOOD_SHAREGPT, GOOD_OPENAI):
        spec = spec_from_path(broken_file(tmp_path / "d.json", good))
        dataset = load_tokenised([spec], tokenizer, "chatml", 64, skip_bad_records=True)
        assert len(dataset) == 7 and all(any(x != -100 for x in row) for row in dataset["labels"])
    pairs = load_preference_records(broken_file(tmp_path / "p.json", GOOD_PREFERENCE), skip_bad_records=True)
    assert len(tokenise_preferences(pairs, tokenizer, "chatml", 64)) == 6
