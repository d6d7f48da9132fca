"""scripts/generate.py: the predictions file a user gets, and batched generation that changes nothing."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PYTHON, run_script

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPT = REPO_ROOT / "scripts" / "generate.py"

# Prompts of clearly different lengths (left padding matters), with and without `input` and `output`.
DEV_RECORDS = [
    {"instruction": "what is 1+1?", "input": "", "output": "答案是 2"},
    {
        "instruction": "what is 12+12?",
        "input": "第12个问题, please answer with a short sentence",
        "output": "24",
    },
    {"instruction": "hi", "output": "hello"},
    {"instruction": "第3个问题 what is 3+3? Explain the steps one by one, then give the answer."},
    {"instruction": "what is 5+5?", "input": "第5个问题", "output": "答案是 10"},
]


def run_generate(*args: str) -> subprocess.CompletedProcess:
    return run_script(PYTHON, "scripts/generate.py", *args, check=False, timeout=120)


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def dev_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dev") / "dev.json"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in DEV_RECORDS), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def base_predictions(tiny_llama: Path, dev_file: Path) -> Path:
    output = dev_file.parent / "base.jsonl"
    result = run_generate("--dev_file", str(dev_file), "--model_name_or_path", str(tiny_llama),
                          "--output_file", str(output), "--batch_size", "2", "--max_new_tokens", "8")  # fmt: skip
    assert result.returncode == 0, result.stderr
    return output


def test_one_line_per_dev_example_in_order(base_predictions: Path) -> None:
    predictions = read_lines(base_predictions)
    assert len(predictions) == len(DEV_RECORDS)
    for prediction, record in zip(predictions, DEV_RECORDS, strict=True):
        assert set(prediction) == {"input", "predict", "target"}
        query = record["instruction"] + (f"\n{record['input']}" if record.get("input") else "")
        assert prediction["input"] == f"Human: {query}\n\nAssistant:"  # BELLE's prompt, the default template
        assert prediction["target"] == record.get("output", "")
        assert isinstance(prediction["predict"], str)
    assert any(p["predict"] for p in predictions), "a random model still generates something"


def test_refuses_to_overwrite(base_predictions: Path, tiny_llama: Path, dev_file: Path) -> None:
    before = base_predictions.read_bytes()
    result = run_generate("--dev_file", str(dev_file), "--model_name_or_path", str(tiny_llama),
                          "--output_file", str(base_predictions))  # fmt: skip
    assert result.returncode != 0
    assert "already exists" in result.stderr and "--overwrite" in result.stderr
    assert "Traceback" not in result.stderr
    assert base_predictions.read_bytes() == before


def test_lora_weights_change_the_predictions(
    base_predictions: Path, tiny_llama: Path, tiny_lora_adapter: Path, dev_file: Path
) -> None:
    result = run_generate("--dev_file", str(dev_file), "--model_name_or_path", str(tiny_llama),
                          "--lora_weights", str(tiny_lora_adapter), "--llama",
                          "--batch_size", "2", "--max_new_tokens", "8")  # fmt: skip
    assert result.returncode == 0, result.stderr
    default_output = tiny_lora_adapter / "predictions.jsonl"  # beside the adapter unless --output_file
    assert str(default_output) in result.stderr
    adapted = read_lines(default_output)
    assert [p["input"] for p in adapted] == [p["input"] for p in read_lines(base_predictions)]
    assert [p["predict"] for p in adapted] != [p["predict"] for p in read_lines(base_predictions)]


def test_batched_greedy_equals_one_at_a_time(tiny_llama: Path) -> None:
    """Left padding with an attention mask must not change a single greedy token."""
    import torch

    spec = importlib.util.spec_from_file_location("generate_script", SCRIPT)
    generate = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = generate  # dataclasses look their module up while building the class
    spec.loader.exec_module(generate)
    from common.modeling import load_causal_lm, load_tokenizer
    from common.templates import encode_generation_prompt, get_template

    tokenizer = load_tokenizer(str(tiny_llama), padding_side="left")
    model = load_causal_lm(str(tiny_llama), dtype=torch.float32).eval()
    config = generate.GenerateConfig(max_new_tokens=12, decoding="greedy")
    settings = generate.generation_settings(config, [tokenizer.eos_token_id], tokenizer.pad_token_id)
    belle = get_template("belle")
    prompt_ids = [
        encode_generation_prompt(
            belle,
            tokenizer,
            [{"role": "user", "content": r["instruction"] + (f"\n{r['input']}" if r.get("input") else "")}],
        )
        for r in DEV_RECORDS
    ]
    assert len({len(ids) for ids in prompt_ids}) == len(prompt_ids), "prompts need different lengths"

    batched = generate.generate_batch(model, tokenizer, prompt_ids, settings)
    one_at_a_time = [generate.generate_batch(model, tokenizer, [ids], settings)[0] for ids in prompt_ids]
    assert batched == one_at_a_time
    assert all(len(ids) > 0 for ids in batched)


def load_generate_module():
    spec = importlib.util.spec_from_file_location("generate_script", SCRIPT)
    if spec.name in sys.modules:
        return sys.modules[spec.name]
    generate = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = generate  # dataclasses look their module up while building the class
    spec.loader.exec_module(generate)
    return generate


def test_no_dev_record_is_an_error_before_any_model_loads(tmp_path: Path) -> None:
    from common.data import DataError

    generate = load_generate_module()
    empty = tmp_path / "empty.json"
    empty.write_text("[]\n")
    args = [
        "--model_name_or_path",
        str(tmp_path / "no-such-model"),
        "--output_file",
        str(tmp_path / "p.jsonl"),
    ]
    with pytest.raises(DataError, match=rf"^{empty}: no dev records, nothing to generate$"):
        generate.main(["--dev_file", str(empty), *args])
    only_bad = tmp_path / "bad.json"
    only_bad.write_text('{"instruction": ""}\n')
    with pytest.raises(DataError, match=rf"{only_bad}:1: 'instruction' must be a non-empty string"):
        generate.main(["--dev_file", str(only_bad), *args])
    with pytest.raises(DataError, match=rf"^{only_bad}: no dev records, nothing to generate$"):
        generate.main(["--dev_file", str(only_bad), "--skip_bad_records", *args])
    assert not (tmp_path / "p.jsonl").exists()


def test_skip_bad_records_and_the_settings_file(tmp_path: Path, tiny_llama: Path) -> None:
    from common.data import DataError
    from common.report import read_generation_settings
    from common.runs import sha256_of

    generate = load_generate_module()
    dev = tmp_path / "dev.json"
    good = [json.dumps(r, ensure_ascii=False).encode() for r in DEV_RECORDS[:2]]
    dev.write_bytes(b"\n".join([b'{"instruction": "broken', *good, b'{"instruction": "\xff"}']) + b"\n")
    output = tmp_path / "p.jsonl"
    args = ["--dev_file", str(dev), "--model_name_or_path", str(tiny_llama), "--output_file", str(output),
            "--max_new_tokens", "2", "--template", "chatml", "--seed", "7"]  # fmt: skip
    with pytest.raises(DataError, match="2 bad record"):
        generate.main(args)
    generate.main([*args, "--skip_bad_records"])
    assert [p["target"] for p in read_lines(output)] == [r["output"] for r in DEV_RECORDS[:2]]
    settings = read_generation_settings(output)
    assert settings == json.loads((tmp_path / "p.settings.json").read_text())
    assert (settings["model_name_or_path"], settings["lora_weights"], settings["template"]) == (
        str(tiny_llama), None, "chatml")  # fmt: skip
    assert settings["decoding"]["decoding"] == "greedy" and settings["decoding"]["max_new_tokens"] == 2
    assert settings["dev_data"]["files_sha256"] == {str(dev): sha256_of(dev)}
    assert settings["dev_data"]["examples"] == 2 and settings["seed"] == 7
    assert settings["versions"]["torch"] and settings["versions"]["transformers"]
