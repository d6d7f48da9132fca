"""Model families that ship their own modeling code (Baichuan, ChatGLM, InternLM, Qwen v1, XVERSE), on tiny
stand-ins the tests write: a folder whose config.json `auto_map` names the modeling file of
tests/fixtures/remote_code/ (one fused query/key/value projection: Baichuan's `W_pack`, Qwen v1's `c_attn`),
and a tokenizer with their quirks (its own left-only padding like ChatGLM's, no pad token like Qwen v1's)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import PYTHON, REPO, run_script

FIXTURE = REPO / "tests" / "fixtures" / "remote_code"
FUSED = {"baichuan": "W_pack", "qwen": "c_attn"}  # family -> the projection our family table targets
TRAIN = "data_dir/sample_sft.train.json"
SFT = ["--data_path", TRAIN, "--max_samples", "16", "--cutoff_len", "64", "--val_set_size", "0", "--max_steps",
       "2", "--batch_size", "4", "--learning_rate", "5e-3", "--logging_steps", "1", "--cache_dir", "null"]  # fmt: skip
DEV_RECORDS = [  # prompts of different lengths: generation left-pads them together
    {"instruction": "hi", "output": "hello"},
    {"instruction": "what is 12+12?", "input": "第12个问题, please answer with a short sentence", "output": "24"},
    {"instruction": "把下面的词语翻译成英文。", "input": "彩虹", "output": "rainbow"},
]


def refusal(folder: Path) -> str:
    return (f"error: {folder} ships its own model or tokenizer code (auto_map in its config); allowing it runs "
            "that folder's Python code on this machine: read it, then set trust_remote_code true "
            "(--trust_remote_code)")  # fmt: skip


def without_pad_token(tiny_llama: Path, folder: Path) -> dict:
    """tiny-llama's tokenizer files in `folder`, its pad token removed (as ChatGLM's and Qwen v1's lack one);
    returns the tokenizer config to extend."""
    shutil.copyfile(tiny_llama / "tokenizer.json", folder / "tokenizer.json")
    settings = json.loads((tiny_llama / "tokenizer_config.json").read_text())
    del settings["pad_token"]
    return settings


def write_standin(folder: Path, family: str, tiny_llama: Path) -> Path:
    """A custom-code model folder as the hub ships them: config, weights, tokenizer, and the *.py they need."""
    from transformers import AutoConfig, AutoModelForCausalLM

    folder.mkdir(parents=True)
    for code in FIXTURE.glob("*.py"):
        shutil.copyfile(code, folder / code.name)
    # a helper no auto_map names (Baichuan ships a quantizer.py, Qwen a cpp_kernels.py): merged models keep it
    (folder / "quantizer.py").write_text('"""Imported only when the model is quantised."""\n')
    family_class = family.capitalize()
    config = {"model_type": family, "fused_qkv_name": FUSED[family],
              "auto_map": {"AutoConfig": f"configuration_standin.{family_class}StandInConfig",
                           "AutoModelForCausalLM": f"modeling_standin.{family_class}StandInForCausalLM"}}  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder, trust_remote_code=True),
                                             trust_remote_code=True)  # fmt: skip
    model.save_pretrained(folder)
    tokenizer = without_pad_token(tiny_llama, folder)
    tokenizer |= {"tokenizer_class": "StandInTokenizerFast",
                  "auto_map": {"AutoTokenizer": [None, "tokenization_standin.StandInTokenizerFast"]}}  # fmt: skip
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer))
    return folder


@pytest.fixture(scope="module")
def standins(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("remote-code")
    return {family: write_standin(root / family, family, tiny_llama) for family in FUSED}


@pytest.fixture(scope="module")
def dev_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dev") / "dev.json"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in DEV_RECORDS), encoding="utf-8")
    return path


def script(name: str, *args: str) -> Path:
    """The script's main() in this process (the imports are paid once; the refusal test runs a real process)."""
    import importlib

    return importlib.import_module(f"scripts.{name}").main(list(args))


def generate(dev_file: Path, output: Path, *args: str) -> list[str]:
    script("generate", "--dev_file", str(dev_file), "--output_file", str(output), "--batch_size", "3",
           "--max_new_tokens", "6", "--trust_remote_code", *args)  # fmt: skip
    return [json.loads(line)["predict"] for line in output.read_text(encoding="utf-8").splitlines()]


def test_custom_code_is_refused_without_the_key(standins, dev_file, tmp_path):
    folder = standins["baichuan"]
    result = run_script(PYTHON, "scripts/finetune.py", "--model_name_or_path", str(folder), "--output_dir",
                        str(tmp_path / "out"), check=False)  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == refusal(folder)
    assert "Traceback" not in result.stderr
    # the model loader says the same for every script (generate.py, merge_lora.py, the servers)
    from common.config import ConfigError
    from common.modeling import load_causal_lm

    with pytest.raises(ConfigError) as refused:
        load_causal_lm(str(folder), torch.float32)
    assert f"error: {refused.value}" == refusal(folder)


@pytest.fixture(scope="module")
def adapters(standins, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A two-step LoRA SFT run on each stand-in, on the family's default targets (no lora_target_modules)."""
    root = tmp_path_factory.mktemp("sft")
    for family, folder in standins.items():
        script("finetune", "--model_name_or_path", str(folder), "--output_dir", str(root / family), "--use_lora",
               "--trust_remote_code", *SFT)  # fmt: skip
    return {family: root / family for family in standins}


@pytest.mark.parametrize("family", list(FUSED))
def test_lora_sft_trains_the_family_default_targets(family, adapters):
    out = adapters[family]
    assert json.loads((out / "adapter_config.json").read_text())["target_modules"] == [FUSED[family]]
    lora_b = {k: v for k, v in load_file(str(out / "adapter_model.safetensors")).items() if "lora_B" in k}
    assert len(lora_b) == 2 and all(f".{FUSED[family]}." in k for k in lora_b)  # one per decoder layer
    assert all(v.abs().max() > 0 for v in lora_b.values())  # B starts at zero: both trained
    resolved = json.loads((out / "run_manifest.json").read_text())["config"]
    assert resolved["trust_remote_code"] is True and resolved["model_type"] is None
    assert resolved["_resolved"]["loss"] == "model's own"  # its backbone's output layout is its own code's


def test_merged_folder_loads_and_generates_like_base_plus_adapter(standins, adapters, dev_file, tmp_path):
    base, adapter, merged = standins["baichuan"], adapters["baichuan"], tmp_path / "merged"
    script("merge_lora", "--base_model", str(base), "--lora_model", str(adapter), "--output_dir", str(merged),
           "--trust_remote_code")  # fmt: skip
    assert {p.name for p in base.glob("*.py")} <= {p.name for p in merged.glob("*.py")}
    info = json.loads((merged / "merge_info.json").read_text())
    assert "quantizer.py" in info["model_code"]
    assert json.loads((merged / "config.json").read_text())["auto_map"]["AutoModelForCausalLM"] == \
        "modeling_standin.BaichuanStandInForCausalLM"  # fmt: skip

    from common.modeling import load_causal_lm

    weights = load_causal_lm(str(merged), torch.float32, trust_remote_code=True).state_dict()
    assert not any("lora" in name for name in weights)  # a plain model of the family's own class
    assert not torch.equal(weights["model.layers.0.self_attn.W_pack.weight"],
                           load_file(str(base / "model.safetensors"))["model.layers.0.self_attn.W_pack.weight"])  # fmt: skip

    merged_answers = generate(dev_file, tmp_path / "merged.jsonl", "--model_name_or_path", str(merged))
    adapted_answers = generate(dev_file, tmp_path / "adapted.jsonl", "--model_name_or_path", str(base),
                               "--lora_weights", str(adapter))  # fmt: skip
    assert merged_answers == adapted_answers and any(merged_answers)


def test_tokenizer_without_pad_token_trains_and_generates_left_padded(tiny_llama, dev_file, tmp_path):
    from common.modeling import load_tokenizer

    folder = tmp_path / "tiny-llama-no-pad"
    folder.mkdir()
    for name in ("config.json", "generation_config.json", "model.safetensors"):
        shutil.copyfile(tiny_llama / name, folder / name)
    (folder / "tokenizer_config.json").write_text(json.dumps(without_pad_token(tiny_llama, folder)))
    tokenizer = load_tokenizer(str(folder), padding_side="left")
    assert tokenizer.pad_token == tokenizer.eos_token == "</s>"
    assert tokenizer(["hi", "a longer prompt"], padding=True)["attention_mask"][0][0] == 0  # padded on the left

    script("finetune", "--model_name_or_path", str(folder), "--output_dir", str(tmp_path / "sft"), "--use_lora",
           *SFT)  # fmt: skip
    batched = generate(dev_file, tmp_path / "batched.jsonl", "--model_name_or_path", str(folder),
                       "--lora_weights", str(tmp_path / "sft"))  # fmt: skip
    one_by_one = generate(dev_file, tmp_path / "single.jsonl", "--model_name_or_path", str(folder),
                          "--lora_weights", str(tmp_path / "sft"), "--batch_size", "1")  # fmt: skip
    assert batched == one_by_one and any(batched)  # the padding (eos as pad, on the left) changes no answer


def test_tokenizer_without_eos_and_pad_ends_answers_with_endoftext(tiny_llama, tmp_path):
    """Qwen v1's tokenizer names neither eos nor pad; its documents end with <|endoftext|>."""
    from transformers import AutoTokenizer

    from common.modeling import load_tokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|endoftext|>"]})
    tokenizer.save_pretrained(tmp_path)
    settings = json.loads((tmp_path / "tokenizer_config.json").read_text())
    del settings["eos_token"], settings["pad_token"]
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(settings))
    assert AutoTokenizer.from_pretrained(tmp_path).eos_token is None

    tokenizer = load_tokenizer(str(tmp_path), padding_side="left")
    assert tokenizer.eos_token == tokenizer.pad_token == "<|endoftext|>"
    assert tokenizer.eos_token_id == tokenizer.convert_tokens_to_ids("<|endoftext|>")


def test_families_lists_the_linear_names_of_a_custom_code_folder(standins):
    result = run_script(PYTHON, "-m", "common.families", str(standins["baichuan"]), "--trust_remote_code")
    assert "W_pack" in result.stdout.strip().split(", ")  # read from the module tree, no weights loaded
