"""scripts/build_tiny_models.py, run as a user runs it: deterministic builds that load like hub models."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "build_tiny_models.py"
ARCHS = ("llama", "bloom")
MIXED = "大语言模型 can answer questions 用中文和 English, 也可以写诗! 1+1=2"

EN = [
    "The quick brown fox jumps over the lazy dog.",
    "Machine learning models are trained on large amounts of text.",
    "Please write a short poem about the spring rain.",
    "Fine-tuning adapts a pretrained model to a new task.",
    "What is the capital of France? The capital of France is Paris.",
]
ZH = [
    "今天天气很好，我们去公园散步吧。",
    "机器学习是人工智能的一个分支。",
    "请写一首关于春天的诗。",
    "北京是中国的首都，有着悠久的历史。",
    "大语言模型可以回答问题、写文章和翻译。",
]


def run_build(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )


def write_corpus(data_dir: Path) -> None:
    (data_dir / "pretrain").mkdir(parents=True)
    (data_dir / "pretrain" / "en.txt").write_text(
        "\n".join(EN[i % 5] + " " + EN[(i * 3) % 5] for i in range(200))
    )
    (data_dir / "pretrain" / "zh.txt").write_text("\n".join(ZH[i % 5] + ZH[(i * 2) % 5] for i in range(200)))
    sft = [{"instruction": ZH[i % 5], "input": "", "output": EN[i % 5]} for i in range(20)]
    pref = [{"instruction": EN[i % 5], "chosen": ZH[i % 5], "rejected": "I don't know."} for i in range(20)]
    for name, records in (("sample_sft.json", sft), ("sample_preference.json", pref)):
        lines = [json.dumps(r, ensure_ascii=False) for r in records]
        (data_dir / name).write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same build, twice, into two folders."""
    root = tmp_path_factory.mktemp("tiny")
    data_dir = root / "data_dir"
    write_corpus(data_dir)
    common = ["--archs", ",".join(ARCHS), "--seed", "42", "--vocab_size", "1024", "--data_dir", str(data_dir)]
    for name in ("a", "b"):
        result = run_build(*common, "--output_dir", str(root / name))
        assert result.returncode == 0, result.stderr
    return {"a": root / "a", "b": root / "b", "data_dir": data_dir, "common": common}


def test_help_is_fast_and_explains_flags() -> None:
    result = run_build("--help")
    assert result.returncode == 0
    for flag in ("--archs", "--seed", "--vocab_size", "--output_dir", "--force"):
        assert flag in result.stdout


def test_two_builds_with_the_same_seed_are_byte_identical(built: dict) -> None:
    for arch in ARCHS:
        for name in ("tokenizer.json", "model.safetensors", "config.json", "tokenizer_config.json"):
            a = (built["a"] / f"tiny-{arch}" / name).read_bytes()
            b = (built["b"] / f"tiny-{arch}" / name).read_bytes()
            assert a == b, f"tiny-{arch}/{name} differs between two builds with the same seed"


@pytest.mark.parametrize("arch", ARCHS)
def test_tokenizer_round_trips_chinese_and_english(built: dict, arch: str) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(built["a"] / f"tiny-{arch}")
    ids = tokenizer(MIXED, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == MIXED
    assert tokenizer.unk_token_id == 0 and tokenizer.bos_token_id == 1
    assert tokenizer.eos_token_id == 2 and tokenizer.pad_token_id == 3
    assert tokenizer.padding_side == "right" and tokenizer.model_max_length == 2048


def test_llama_prepends_bos_and_bloom_does_not(built: dict) -> None:
    from transformers import AutoTokenizer

    llama = AutoTokenizer.from_pretrained(built["a"] / "tiny-llama")
    bloom = AutoTokenizer.from_pretrained(built["a"] / "tiny-bloom")
    plain = llama("hello 世界", add_special_tokens=False)["input_ids"]
    assert plain and plain[0] != 1
    assert llama("hello 世界")["input_ids"] == [1, *plain]
    assert (
        bloom("hello 世界")["input_ids"]
        == bloom("hello 世界", add_special_tokens=False)["input_ids"]
        == plain
    )


@pytest.mark.parametrize("arch", ARCHS)
def test_model_loads_from_path_and_runs(built: dict, arch: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = built["a"] / f"tiny-{arch}"
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert model.config.model_type == arch
    assert model.dtype == torch.float32
    assert model.config.vocab_size == len(tokenizer)
    assert (model.config.bos_token_id, model.config.eos_token_id, model.config.pad_token_id) == (1, 2, 3)
    assert (model.generation_config.eos_token_id, model.generation_config.pad_token_id) == (2, 3)
    n_params = sum(p.numel() for p in model.parameters())
    assert 1_000_000 <= n_params <= 20_000_000
    assert json.loads((path / "build_info.json").read_text())["parameters"] == n_params

    batch = tokenizer(MIXED, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (1, batch["input_ids"].shape[1], len(tokenizer))
    assert torch.isfinite(logits).all()


def test_rerun_with_matching_build_info_skips(built: dict) -> None:
    weights = built["a"] / "tiny-llama" / "model.safetensors"
    before = weights.stat().st_mtime_ns
    result = run_build(*built["common"], "--output_dir", str(built["a"]))
    assert result.returncode == 0, result.stderr
    assert "skipping" in result.stderr and "nothing to build" in result.stderr
    assert weights.stat().st_mtime_ns == before


def test_existing_folder_is_refused_without_force(built: dict, tmp_path: Path) -> None:
    # a different build (another seed) into a folder that holds one
    weights = built["a"] / "tiny-bloom" / "model.safetensors"
    before = weights.read_bytes()
    result = run_build(*built["common"], "--seed", "7", "--output_dir", str(built["a"]))
    assert result.returncode != 0
    assert str(built["a"] / "tiny-llama") in result.stderr and "--force" in result.stderr
    assert weights.read_bytes() == before

    # a folder holding something else entirely
    (tmp_path / "tiny-bloom").mkdir()
    (tmp_path / "tiny-bloom" / "notes.txt").write_text("mine")
    result = run_build(*built["common"], "--archs", "bloom", "--output_dir", str(tmp_path))
    assert result.returncode != 0
    assert str(tmp_path / "tiny-bloom") in result.stderr
    assert (tmp_path / "tiny-bloom" / "notes.txt").read_text() == "mine"

    # --force replaces it with a complete build
    result = run_build(*built["common"], "--archs", "bloom", "--output_dir", str(tmp_path), "--force")
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "tiny-bloom" / "notes.txt").exists()
    assert (tmp_path / "tiny-bloom" / "model.safetensors").read_bytes() == before


def test_missing_training_text_is_a_clear_error(tmp_path: Path) -> None:
    result = run_build("--data_dir", str(tmp_path / "nowhere"), "--output_dir", str(tmp_path / "models"))
    assert result.returncode != 0
    assert "no training text" in result.stderr and "sample_sft.json" in result.stderr
    assert not (tmp_path / "models").exists()
