"""scripts/merge_lora.py: the merged model computes what base + adapter computes, without peft."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import PYTHON, run_script


def run_merge(*args: str) -> subprocess.CompletedProcess:
    return run_script(PYTHON, "scripts/merge_lora.py", *args, check=False, timeout=120)


@pytest.fixture(scope="module")
def merged_dir(tiny_llama: Path, tiny_lora_adapter: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("merge") / "merged"
    result = run_merge("--base_model", str(tiny_llama), "--lora_model", str(tiny_lora_adapter),
                       "--output_dir", str(output))  # fmt: skip
    assert result.returncode == 0, result.stderr
    return output


def test_merged_logits_equal_base_plus_adapter(
    tiny_llama: Path, tiny_lora_adapter: Path, merged_dir: Path
) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    texts = ["Human: what is 7+7?\n\nAssistant: 答案是 14", "Human: 第3个问题\n\nAssistant: "]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32),
                                        tiny_lora_adapter).eval()  # fmt: skip
    merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        adapted_logits = adapted(**batch).logits
        with adapted.disable_adapter():
            base_logits = adapted(**batch).logits
        merged_logits = merged(**batch).logits

    assert (adapted_logits - base_logits).abs().max() > 1e-3, "the adapter must change the model"
    assert (merged_logits - adapted_logits).abs().max() < 1e-4


def test_merged_folder_is_a_plain_model(tiny_llama: Path, tiny_lora_adapter: Path, merged_dir: Path) -> None:
    from safetensors import safe_open
    from transformers import AutoTokenizer

    assert (merged_dir / "model.safetensors").is_file()
    assert not (merged_dir / "adapter_config.json").exists()
    with safe_open(merged_dir / "model.safetensors", "pt") as weights, \
            safe_open(tiny_llama / "model.safetensors", "pt") as base:  # fmt: skip
        assert set(weights.keys()) == set(base.keys())  # no lora_A/lora_B or base_layer left
    tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    assert tokenizer.eos_token == AutoTokenizer.from_pretrained(tiny_llama).eos_token
    info = json.loads((merged_dir / "merge_info.json").read_text())
    assert info["base_model"] == str(tiny_llama)
    assert info["lora_model"] == str(tiny_lora_adapter)
    assert info["dtype"] == "fp32"


def test_refuses_a_non_empty_output_dir(tiny_llama: Path, tiny_lora_adapter: Path, merged_dir: Path) -> None:
    before = (merged_dir / "model.safetensors").read_bytes()
    result = run_merge("--base_model", str(tiny_llama), "--lora_model", str(tiny_lora_adapter),
                       "--output_dir", str(merged_dir))  # fmt: skip
    assert result.returncode != 0
    assert "already holds files" in result.stderr and "--overwrite" in result.stderr
    assert "Traceback" not in result.stderr
    assert (merged_dir / "model.safetensors").read_bytes() == before
