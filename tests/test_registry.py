"""The dataset registry: --dataset mixes registered files (max_samples each, seeded shuffle), hub
entries fail offline with one clear message, finetune/generate take --dataset and --template, and
tokenised data is cached by content."""

from __future__ import annotations

import json
import shutil

import pytest

from common.data import (
    DataError,
    load_dataset_info,
    load_mixed,
    load_normalised,
    resolve_specs,
    tokenised_cache_key,
)
from common.modeling import load_tokenizer
from conftest import PYTHON, run_script


def test_shipped_registry_loads_every_local_entry():
    registry = load_dataset_info("data_dir")
    local = [s for s in registry.values() if s.file_name]
    assert {"sample_sft", "sample_sft_train", "sample_sft_dev", "sample_preference", "pretrain_corpus"} <= {
        s.name for s in local
    }
    counts = {s.name: len(load_normalised(s)) for s in local}
    assert counts["sample_sft"] == 320 and counts["sample_preference"] == 120
    assert counts["sample_sft_train"] + counts["sample_sft_dev"] == 320
    assert {"belle_0.5m", "belle_1m", "belle_multiturn"} <= set(registry)


def test_mixing_takes_max_samples_each_and_shuffles_by_seed():
    specs = resolve_specs("sample_sft_train,sample_sft_dev", None, "data_dir")
    mixed = load_mixed(specs, max_samples=5, seed=1)
    assert [r["_source"] for r in mixed].count("sample_sft_train") == 5
    assert [r["_source"] for r in mixed].count("sample_sft_dev") == 5
    assert [r["_where"] for r in mixed] == [r["_where"] for r in load_mixed(specs, max_samples=5, seed=1)]
    assert [r["_where"] for r in mixed] != [r["_where"] for r in load_mixed(specs, max_samples=5, seed=2)]


def test_unknown_name_and_offline_hub_are_clear_errors():
    with pytest.raises(DataError, match="dataset 'belle' is not in data_dir/dataset_info.json; registered: "):
        resolve_specs("belle", None, "data_dir")
    [spec] = resolve_specs("belle_0.5m", None, "data_dir")
    with pytest.raises(DataError, match="cannot load 'BelleGroup/train_0.5M_CN' from the Hugging Face hub"):
        load_normalised(spec)


def test_cache_key_follows_content_template_and_cutoff(tmp_path, tiny_llama, monkeypatch):
    tokenizer = load_tokenizer(str(tiny_llama))
    shutil.copy("data_dir/sample_sft.dev.json", tmp_path / "d.json")
    specs = resolve_specs(None, str(tmp_path / "d.json"), "data_dir")
    key = tokenised_cache_key(specs, "data_dir", tokenizer, template="belle", cutoff_len=512)
    assert key == tokenised_cache_key(specs, "data_dir", tokenizer, template="belle", cutoff_len=512)
    assert key != tokenised_cache_key(specs, "data_dir", tokenizer, template="chatml", cutoff_len=512)
    assert key != tokenised_cache_key(specs, "data_dir", tokenizer, template="belle", cutoff_len=256)
    # the same name with another definition (a template fixed in a later commit) is another key
    import dataclasses

    from common import templates

    edited = dataclasses.replace(templates.TEMPLATES["belle"], system="another default system prompt")
    monkeypatch.setitem(templates.TEMPLATES, "belle", edited)
    assert key != tokenised_cache_key(specs, "data_dir", tokenizer, template="belle", cutoff_len=512)
    monkeypatch.undo()
    with open(tmp_path / "d.json", "a", encoding="utf-8") as out:
        out.write('{"instruction": "new", "output": "record"}\n')
    assert key != tokenised_cache_key(specs, "data_dir", tokenizer, template="belle", cutoff_len=512)


def finetune(*args: str, check: bool = True):
    return run_script(PYTHON, "scripts/finetune.py", *args, check=check)


def test_finetune_with_registered_datasets_template_and_cache(tmp_path, tiny_llama):
    args = ["--model_name_or_path", str(tiny_llama), "--dataset", "sample_sft_train,sample_sft_dev",
            "--max_samples", "20", "--template", "chatml", "--max_steps", "1", "--val_set_size", "0",
            "--per_device_train_batch_size", "2", "--batch_size", "2", "--cache_dir", str(tmp_path / "cache")]  # fmt: skip
    first = finetune(*args, "--output_dir", str(tmp_path / "a"))
    assert (
        "examples: 40 train, 0 held out, from sample_sft_train,sample_sft_dev (template chatml)"
        in first.stderr
    )
    assert "loaded cached tokenised data" not in first.stderr
    second = finetune(*args, "--output_dir", str(tmp_path / "b"))
    assert "loaded cached tokenised data" in second.stderr
    manifest = json.loads((tmp_path / "b" / "run_manifest.json").read_text())
    assert set(manifest["data_files"]) == {"data_dir/sample_sft.train.json", "data_dir/sample_sft.dev.json"}
    config = json.loads((tmp_path / "b" / "finetune_config.json").read_text())
    assert config["template"] == "chatml" and config["dataset"] == "sample_sft_train,sample_sft_dev"


def test_finetune_lists_bad_records_or_skips_them(tmp_path, tiny_llama):
    """A ShareGPT file whose FIRST line is broken (the format is the majority's, not line 1's), with a
    line that is not UTF-8 and a record with a null answer."""
    data = tmp_path / "bad.json"
    good = json.dumps({"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}]})
    null = json.dumps({"conversations": [{"from": "human", "value": "x"}, {"from": "gpt", "value": None}]})
    lines = (
        [b"{oops"]
        + [good.encode()] * 4
        + [b'{"conversations": "\xff"}']
        + [good.encode()] * 4
        + [null.encode()]
    )
    data.write_bytes(b"\n".join(lines) + b"\n")
    args = ["--model_name_or_path", str(tiny_llama), "--data_path", str(data), "--max_steps", "1",
            "--val_set_size", "0", "--cache_dir", str(tmp_path / "cache")]  # fmt: skip
    stopped = finetune(*args, "--output_dir", str(tmp_path / "a"), check=False)
    assert stopped.returncode != 0 and "Traceback" not in stopped.stderr
    assert "3 bad record(s); pass --skip_bad_records" in stopped.stderr
    assert (
        "bad.json:1: invalid JSON line" in stopped.stderr and "bad.json:6: not valid UTF-8" in stopped.stderr
    )
    assert "bad.json:11: turn 1: 'value' must be a string" in stopped.stderr
    skipped = finetune(*args, "--output_dir", str(tmp_path / "b"), "--skip_bad_records")
    assert "skipped 3 bad record(s)" in skipped.stderr and "examples: 8 train" in skipped.stderr
    unknown = finetune(*args, "--output_dir", str(tmp_path / "c"), "--template", "qwen9", check=False)
    assert "error: unknown template 'qwen9'; choose one of default, alpaca" in unknown.stderr


def test_generate_with_dataset_and_template_prompts_as_training(tmp_path, tiny_llama):
    from common.templates import get_template, render_text

    out = tmp_path / "p.jsonl"
    run_script(PYTHON, "scripts/generate.py", "--model_name_or_path", str(tiny_llama), "--dataset",
               "sample_sft_dev", "--template", "chatml", "--max_samples", "2", "--max_new_tokens", "3",
               "--output_file", str(out))  # fmt: skip
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    dev = load_normalised(resolve_specs("sample_sft_dev", None, "data_dir")[0], max_samples=2)
    for line, record in zip(lines, dev, strict=True):
        messages = record["messages"]
        full = render_text(get_template("chatml"), messages, None)
        assert full == line["input"] + line["target"] + "<|im_end|>\n"  # ChatML's newline after the last turn


def test_data_inspection_notebook_runs_under_papermill(tmp_path):
    """The notebook runs top to bottom with parameters, in a kernel of this interpreter (the user-level
    "belle-finetune" kernel may belong to another checkout), and is committed without outputs."""
    import sys

    notebook = json.loads(open("notebooks/data_inspection.ipynb", encoding="utf-8").read())
    assert notebook["metadata"]["kernelspec"]["name"] == "belle-finetune"
    assert all(not c.get("outputs") for c in notebook["cells"] if c["cell_type"] == "code")
    assert sum("parameters" in c["metadata"].get("tags", []) for c in notebook["cells"]) == 1
    kernel = tmp_path / "jupyter" / "kernels" / "belle-finetune"
    kernel.mkdir(parents=True)
    (kernel / "kernel.json").write_text(json.dumps({"argv": [sys.executable, "-m", "ipykernel_launcher", "-f",
                                        "{connection_file}"], "display_name": "test", "language": "python"}))  # fmt: skip
    out = tmp_path / "di.ipynb"
    run_script(PYTHON, "-m", "papermill", "notebooks/data_inspection.ipynb", str(out), "-k", "belle-finetune",
               "-p", "dataset", "sample_sft_train,sample_sft_dev", "-p", "template", "chatml",
               "-p", "cutoff_len", "128", "-p", "dev_dataset", "sample_sft_dev",
               env={"JUPYTER_PATH": str(tmp_path / "jupyter")})  # fmt: skip
    text = "".join("".join(o.get("text", "")) for c in json.loads(out.read_text())["cells"]
                   for o in c.get("outputs", []))  # fmt: skip
    assert (
        "sample_sft_train                    240 records" in text
        and "total                               320" in text
    )
    assert "are longer than cutoff_len=128" in text
    assert "sample_sft_dev                      0 duplicate records,      0 repeated prompts of 80" in text
    assert "WARNING: 80 of 80 dev prompts (100%) also occur in the 320 training records" in text
    assert text.count("【") >= 3 and "<|im_start|>assistant" in text
