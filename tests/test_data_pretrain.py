"""The pre-training corpus: a non-UTF-8 line is named by file:line (or skipped and counted), a BOM is
dropped, a tiny corpus still trains (the held-out rule never takes every block, and says so), a corpus
with no whole block says exactly that, and LLaMA-Factory's registered text datasets are read by name."""

from __future__ import annotations

import json
import logging
import re
from itertools import islice

import datasets
import pytest

from common.data import DataError
from common.pretrain_data import (
    corpus_files,
    iter_documents,
    load_blocks,
    registry_corpus,
    split_blocks,
    stream_blocks,
)


def test_non_utf8_line_is_named_or_skipped_and_counted(tmp_path, tiny_llama, caplog):
    from common.modeling import load_tokenizer

    (tmp_path / "a.txt").write_bytes(b"first doc\nbad \xff\xfe line\nthird doc\n")
    (tmp_path / "b.jsonl").write_bytes(b'{"text": "json doc"}\n{"text": "\xc3\x28"}\n')
    files = corpus_files(tmp_path)
    with pytest.raises(DataError, match=r"a.txt:2: not valid UTF-8$"):
        list(iter_documents(files))
    skipped: list[str] = []
    assert list(iter_documents(files, skipped=skipped)) == ["first doc", "third doc", "json doc"]
    assert skipped == [f"{tmp_path}/a.txt:2: not valid UTF-8", f"{tmp_path}/b.jsonl:2: not valid UTF-8"]
    tokenizer = load_tokenizer(str(tiny_llama))
    with caplog.at_level(logging.WARNING):
        load_blocks(files, tokenizer, 4, None, skip_bad_records=True)
    assert "skipped 2 bad line(s) of the corpus (first: " in caplog.text


def test_bom_is_dropped(tmp_path):
    (tmp_path / "a.txt").write_text("\ufefffirst doc\nsecond\n", encoding="utf-8")
    (tmp_path / "b.jsonl").write_text('\ufeff{"text": "json doc"}\n', encoding="utf-8")
    assert list(iter_documents(corpus_files(tmp_path))) == ["first doc", "second", "json doc"]


def test_tiny_corpus_trains_on_every_block_and_says_so(caplog):
    tiny = datasets.Dataset.from_dict({"input_ids": [[i] * 4 for i in range(4)]})
    with caplog.at_level(logging.WARNING):
        train, held = split_blocks(tiny, 5)
    assert (len(train), len(held)) == (4, 0)
    assert (
        "only 4 blocks: validation_split_percentage 5 would hold out every one; all of them train"
        in caplog.text
    )
    six = datasets.Dataset.from_dict({"input_ids": [[i] * 4 for i in range(6)]})
    train, held = split_blocks(six, 5)  # block 5 trains: the usual rule holds
    assert [r[0] for r in train["input_ids"]] == [5] and len(held) == 5


def test_streaming_a_tiny_corpus_matches_in_memory(tmp_path, tiny_llama):
    from common.modeling import load_tokenizer

    tokenizer = load_tokenizer(str(tiny_llama))
    (tmp_path / "a.txt").write_text("one two three four five six seven eight nine ten\n", encoding="utf-8")
    files = corpus_files(tmp_path)
    memory = load_blocks(files, tokenizer, 4, None)
    assert 0 < len(memory) <= 5  # every block would be held out by the 5% rule
    train, held = split_blocks(memory, 5)
    assert [b["input_ids"] for b in stream_blocks(files, tokenizer, 4, 5, False)] == train["input_ids"]
    assert list(stream_blocks(files, tokenizer, 4, 5, True)) == [] == list(held)
    (tmp_path / "a.txt").write_text("word " * 400, encoding="utf-8")  # now enough for the usual rule
    streamed_held = list(stream_blocks(files, tokenizer, 4, 5, True))
    assert [b["input_ids"] for b in streamed_held] == split_blocks(load_blocks(files, tokenizer, 4, None), 5)[
        1
    ]["input_ids"]
    assert len(list(islice(stream_blocks(files, tokenizer, 4, 5, False), 3))) == 3


def write_registry(folder):
    (folder / "wiki.txt").write_text("A wiki document about rivers and hills.\n" * 20, encoding="utf-8")
    (folder / "c4.jsonl").write_text("".join(json.dumps({"body": f"web page {i} about cooking"}) + "\n"
                                              for i in range(20)), encoding="utf-8")  # fmt: skip
    (folder / "arr.json").write_text(json.dumps([{"text": "an array document"}]), encoding="utf-8")
    (folder / "dataset_info.json").write_text(json.dumps({
        "wiki_demo": {"file_name": "wiki.txt", "columns": {"prompt": "text"}},
        "c4_demo": {"file_name": "c4.jsonl", "columns": {"prompt": "body"}},
        "array_demo": {"file_name": "arr.json", "columns": {"prompt": "text"}},
        "sft_demo": {"file_name": "arr.json"},
        "hub_demo": {"hf_hub_url": "example/c4", "columns": {"prompt": "text"}},
    }))  # fmt: skip


def test_registered_text_datasets_are_read_by_name(tmp_path):
    write_registry(tmp_path)
    files, columns = registry_corpus("c4_demo,array_demo", tmp_path)
    assert [f.name for f in files] == ["c4.jsonl", "arr.json"]
    documents = list(iter_documents(files, columns))
    assert documents[0] == "web page 0 about cooking" and documents[-1] == "an array document"
    with pytest.raises(DataError, match="dataset 'sft_demo' is sft data, not pre-training text"):
        registry_corpus("sft_demo", tmp_path)
    with pytest.raises(DataError, match="dataset 'hub_demo': pre-training reads local files"):
        registry_corpus("hub_demo", tmp_path)


def test_pretrain_script_takes_registry_names_and_a_tiny_corpus(tmp_path, tiny_llama, capfd):
    """In process (the script's main, as run_as_script calls it): a subprocess would add its imports."""
    from scripts.pretrain import main

    write_registry(tmp_path)
    args = ["--model_name_or_path", str(tiny_llama), "--dataset_dir", str(tmp_path), "--block_size", "128",
            "--max_steps", "1", "--batch_size", "1", "--per_device_train_batch_size", "1",
            "--data_cache_dir", "null", "--eval_before_training", "false", "--report_to", "none"]  # fmt: skip
    message = "array_demo: too little text for one 128-token block (the 1 file(s) make no whole block)"
    with pytest.raises(DataError, match=re.escape(message)):
        main([*args, "--dataset", "array_demo", "--output_dir", str(tmp_path / "a")])
    output_dir = main([*args, "--dataset", "wiki_demo,c4_demo", "--output_dir", str(tmp_path / "b")])
    logged = capfd.readouterr().err  # the script's own log handler writes to stderr
    assert "would hold out every one; all of them train and there is no held-out set" in logged
    assert "blocks of 128 tokens: 4 train, 0 held out, from 2 files" in logged
    assert json.loads((output_dir / "pretrain_config.json").read_text())["dataset"] == "wiki_demo,c4_demo"
    assert json.loads((output_dir / "eval_results.json").read_text()) == {}  # no held-out set, no perplexity
