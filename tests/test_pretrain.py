"""Continued pre-training: exact block packing, streaming == in-memory, perplexity falls, vocab extension."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from common.pretrain_data import (
    corpus_files,
    is_held_out,
    iter_documents,
    load_blocks,
    pack_blocks,
    split_blocks,
    stream_blocks,
    tokenise_documents,
)
from conftest import PYTHON, REPO, run_script


def test_pack_blocks_is_exact():
    docs = [[1, 2, 3], [4, 5], [6, 7, 8, 9, 10], [11], [12, 13]]
    blocks = list(pack_blocks(docs, 4))
    assert blocks == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]]  # 13 is the dropped remainder
    flat = [t for d in docs for t in d]
    assert [t for b in blocks for t in b] == flat[: len(flat) // 4 * 4]  # nothing lost but the tail
    assert list(pack_blocks([[1, 2]], 4)) == []
    with pytest.raises(ValueError):
        list(pack_blocks(docs, 0))


def test_held_out_split_is_whole_blocks():
    blocks = [[i] * 3 for i in range(250)]
    import datasets

    train, held = split_blocks(datasets.Dataset.from_dict({"input_ids": blocks}), 5)
    held_ids = [row[0] for row in held["input_ids"]]
    assert held_ids == [i for i in range(250) if i % 100 < 5]  # 0-4, 100-104, 200-204
    assert len(train) + len(held) == 250
    assert not set(held_ids) & {row[0] for row in train["input_ids"]}
    assert all(row["labels"] == row["input_ids"] for row in train)
    assert is_held_out(3, 5) and not is_held_out(5, 5)


@pytest.fixture(scope="module")
def tokenizer(tiny_llama):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_llama))


def test_documents_end_with_eos_and_jsonl_is_read(tmp_path, tokenizer):
    (tmp_path / "b.txt").write_text("hello world\n\nsecond doc\n", encoding="utf-8")
    (tmp_path / "a.jsonl").write_text('{"text": "from json"}\n', encoding="utf-8")
    files = corpus_files(tmp_path)
    assert [f.name for f in files] == ["a.jsonl", "b.txt"]
    assert list(iter_documents(files)) == ["from json", "hello world", "second doc"]
    ids = list(tokenise_documents(["hello world"], tokenizer))[0]
    assert ids[-1] == tokenizer.eos_token_id and tokenizer.bos_token_id not in ids
    (tmp_path / "c.jsonl").write_text('{"text": 1}\n', encoding="utf-8")
    with pytest.raises(Exception, match="c.jsonl:1"):
        list(iter_documents(corpus_files(tmp_path)))


def test_streaming_matches_in_memory_and_cache_is_reused(tmp_path, tokenizer, caplog):
    files = corpus_files(REPO / "data_dir/pretrain")
    memory = load_blocks(files, tokenizer, 64, str(tmp_path))
    train, held = split_blocks(memory, 5)
    from itertools import islice

    streamed_train = [b["input_ids"] for b in islice(stream_blocks(files, tokenizer, 64, 5, False), 30)]
    streamed_held = [b["input_ids"] for b in islice(stream_blocks(files, tokenizer, 64, 5, True), 5)]
    assert streamed_train == train["input_ids"][:30]
    assert streamed_held == held["input_ids"][:5]
    caplog.set_level("INFO")
    again = load_blocks(files, tokenizer, 64, str(tmp_path))
    assert "loaded tokenised blocks from cache" in caplog.text
    assert again["input_ids"][:10] == memory["input_ids"][:10]


def test_resize_embeddings_mean(tiny_llama):
    import torch

    from common.modeling import load_causal_lm
    from scripts.pretrain import resize_embeddings_mean

    model = load_causal_lm(str(tiny_llama), dtype=torch.float32)
    old = model.get_input_embeddings().weight.detach().clone()
    assert resize_embeddings_mean(model, old.shape[0] + 5) == old.shape[0]
    new = model.get_input_embeddings().weight
    assert new.shape[0] == old.shape[0] + 5 and model.config.vocab_size == old.shape[0] + 5
    assert torch.equal(new[: old.shape[0]], old)
    assert torch.allclose(new[old.shape[0] :], old.mean(0).expand(5, -1))
    head = model.get_output_embeddings().weight
    assert torch.allclose(head[-1], head[:-5].mean(0))


def test_vocab_rule():
    from common.config import ConfigError
    from scripts.pretrain import VOCAB_PADDING_SLACK, check_vocab

    class Tok:
        def __init__(self, vocab):
            self.vocab = vocab

        def __len__(self):
            return len(self.vocab)

        def get_vocab(self):
            return self.vocab

    base = Tok({f"p{i}": i for i in range(1000)})
    check_vocab(1000, Tok({**base.vocab, "new": 1000}), base)  # an extension
    check_vocab(1000 + VOCAB_PADDING_SLACK, base, None)  # padded embedding
    with pytest.raises(ConfigError, match="different tokenizer"):
        check_vocab(1000 + VOCAB_PADDING_SLACK + 1, base, None)
    with pytest.raises(ConfigError, match="other ids"):
        check_vocab(1000, Tok({**base.vocab, "p0": 1, "p1": 0}), base)


def test_renumbered_tokenizer_is_refused_before_training(tmp_path, tiny_llama):
    tok = tmp_path / "tok"
    tok.mkdir()
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        if (tiny_llama / name).is_file():
            (tok / name).write_text((tiny_llama / name).read_text())
    spec = json.loads((tiny_llama / "tokenizer.json").read_text())
    vocab = spec["model"]["vocab"]
    a, b = [p for p, i in vocab.items() if i in (100, 101)]
    vocab[a], vocab[b] = vocab[b], vocab[a]
    (tok / "tokenizer.json").write_text(json.dumps(spec))
    result = run_script(PYTHON, "scripts/pretrain.py", "--tokenizer_name_or_path", str(tok),
                        "--output_dir", str(tmp_path / "x"), check=False)  # fmt: skip
    assert result.returncode != 0
    assert "error:" in result.stderr and "other ids" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "x" / "run_manifest.json").exists()


def test_run_pt_sh_defaults_lower_perplexity(tmp_path, tiny_llama):
    out = tmp_path / "pt"
    env = {"output_dir": str(out), "training_steps": "30", "lr": "2e-3", "data_cache": str(tmp_path / "c")}
    run_script("bash", "scripts/run_pt.sh", env=env, timeout=300)
    results = json.loads((out / "eval_results.json").read_text())
    assert results["after_perplexity"] < results["before_perplexity"]
    assert math.isfinite(results["after_perplexity"])
    assert (out / "pt_lora_model/adapter_config.json").is_file()
    assert (out / "pretrain_config.json").is_file() and (out / "run_manifest.json").is_file()
    assert list(out.glob("*.png"))
    # Three checkpoints by default (every 10 of the 30 steps), each complete: RESUME=true has one to take.
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-10", "checkpoint-20", "checkpoint-30"]
    assert all((p / "checkpoint_manifest.json").is_file() for p in out.glob("checkpoint-*"))
    again = run_script("bash", "scripts/run_pt.sh", env=env, check=False)  # no silent overwrite
    assert again.returncode != 0 and "already" in again.stderr
    # The user sees pretrain.py's one line, not a launcher traceback after it.
    assert "Traceback" not in again.stderr and again.stderr.strip().splitlines()[-1].startswith("error:"), again.stderr


def test_extended_tokenizer_trains_saves_merges(tmp_path, tiny_llama):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok_dir = tmp_path / "zh-tok"
    run_script(PYTHON, "scripts/merge_tokenizer.py", "--output_dir", str(tok_dir))
    base_tok = AutoTokenizer.from_pretrained(str(tiny_llama))
    new_tok = AutoTokenizer.from_pretrained(str(tok_dir))
    sample = Path(REPO / "data_dir/pretrain/zh_essays.txt").read_text(encoding="utf-8")[:2000]
    assert len(new_tok) > len(base_tok)
    assert len(new_tok(sample)["input_ids"]) < len(base_tok(sample)["input_ids"])
    assert new_tok.decode(new_tok(sample, add_special_tokens=False)["input_ids"]) == sample

    out = tmp_path / "pt"
    run_script(PYTHON, "scripts/pretrain.py", "--use_lora", "--modules_to_save", "embed_tokens,lm_head",
               "--tokenizer_name_or_path", str(tok_dir), "--max_steps", "3", "--block_size", "32",
               "--eval_before_training", "false", "--max_eval_blocks", "4", "--output_dir", str(out),
               "--data_cache_dir", str(tmp_path / "c"))  # fmt: skip
    saved = load_file(str(out / "pt_lora_model/adapter_model.safetensors"))
    embed = next(v for k, v in saved.items() if k.endswith("embed_tokens.weight"))
    assert embed.shape[0] == len(new_tok)
    base = AutoModelForCausalLM.from_pretrained(str(tiny_llama))
    old_rows = base.get_input_embeddings().weight.shape[0]
    assert not torch.allclose(
        embed[old_rows:], base.get_input_embeddings().weight.mean(0).expand_as(embed[old_rows:])
    )

    merged_dir = tmp_path / "merged"
    run_script(PYTHON, "scripts/merge_lora.py", "--base_model", str(tiny_llama),
               "--lora_model", str(out / "pt_lora_model"), "--output_dir", str(merged_dir))  # fmt: skip
    merged = AutoModelForCausalLM.from_pretrained(str(merged_dir))
    assert merged.config.vocab_size == len(new_tok)
    assert torch.equal(merged.get_input_embeddings().weight, embed.float())
    head = next(v for k, v in saved.items() if k.endswith("lm_head.weight"))
    assert torch.equal(merged.get_output_embeddings().weight, head.float())
    assert len(AutoTokenizer.from_pretrained(str(merged_dir))) == len(new_tok)


def test_streaming_run_needs_max_steps_and_trains(tmp_path, tiny_llama):
    refused = run_script(
        PYTHON, "scripts/pretrain.py", "--streaming", "--output_dir", str(tmp_path / "a"), check=False
    )
    assert refused.returncode != 0 and "error:" in refused.stderr and "max_steps" in refused.stderr
    out = tmp_path / "b"
    run_script(PYTHON, "scripts/pretrain.py", "--streaming", "--max_steps", "3", "--block_size", "32",
               "--max_eval_blocks", "4", "--eval_before_training", "false", "--output_dir", str(out))  # fmt: skip
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    assert math.isfinite(json.loads((out / "eval_results.json").read_text())["after_perplexity"])
