"""Run tracking: W&B offline runs written with no key and no network (config, loss history, predictions
table, artifacts), and run_manifest.json recording a dirty git tree as dirty."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from common import runs
from common.metrics import METRIC_NAMES
from conftest import PYTHON, run_script

# No key, no ~/.netrc (HOME is replaced), WANDB_MODE unset, and every address W&B could reach is dead.
NO_NETWORK = {
    "WANDB_API_KEY": "",
    "WANDB_MODE": "",
    "WANDB_BASE_URL": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "HTTP_PROXY": "http://127.0.0.1:9",
}


def wandb_records(run_folder: Path) -> list:
    """The protobuf records of an offline run's .wandb file (W&B's LevelDB-style log: a 7-byte file header,
    32 KiB blocks, each chunk a 7-byte header of crc32, little-endian length, type full/first/middle/last)."""
    from wandb.proto import wandb_internal_pb2 as pb

    (path,) = run_folder.glob("run-*.wandb")
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    position, block, pending, payloads = 7, 32768, b"", []
    while position + 7 <= len(data):
        if block - position % block < 7:  # a block's tail too short for a header is zero padding
            position += block - position % block
            continue
        length, kind = int.from_bytes(data[position + 4 : position + 6], "little"), data[position + 6]
        chunk, position = data[position + 7 : position + 7 + length], position + 7 + length
        if kind == 1:
            payloads.append(chunk)
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            payloads.append(pending + chunk)
    records = []
    for payload in payloads:
        record = pb.Record()
        record.ParseFromString(payload)
        records.append(record)
    return records


def of_type(records: list, kind: str) -> list:
    return [getattr(r, kind) for r in records if r.WhichOneof("record_type") == kind]


def offline_run(wandb_dir: Path) -> Path:
    (folder,) = (wandb_dir / "wandb").glob("offline-run-*")
    return folder


def test_finetune_logs_config_and_loss_to_an_offline_wandb_run(tiny_llama: Path, tmp_path: Path):
    wandb_dir, run_dir = tmp_path / "wandb-home", tmp_path / "run"
    wandb_dir.mkdir()
    result = run_script(PYTHON, "scripts/finetune.py", "--model_name_or_path", str(tiny_llama),
                        "--data_path", "data_dir/sample_sft.train.json", "--max_steps", "4", "--logging_steps", "1",
                        "--eval_steps", "2", "--output_dir", str(run_dir), "--report_to", "wandb",
                        "--run_name", "tracked-run", timeout=240,
                        env=NO_NETWORK | {"WANDB_DIR": str(wandb_dir), "HOME": str(tmp_path)})  # fmt: skip
    folder = offline_run(wandb_dir)
    assert f"wandb sync {folder}" in result.stdout + result.stderr

    records = wandb_records(folder)
    (run,) = of_type(records, "run")
    assert (run.project, run.display_name) == ("belle-finetune", "tracked-run")
    config = {item.key: json.loads(item.value_json) for c in of_type(records, "config") for item in c.update}
    assert config["resolved_config"] == json.loads((run_dir / "finetune_config.json").read_text())

    history = [
        {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in h.item}
        for h in of_type(records, "history")
    ]
    logged_loss = [(h["train/global_step"], h["train/loss"]) for h in history if "train/loss" in h]
    state = json.loads((run_dir / "trainer_state.json").read_text())
    expected = [(row["step"], row["loss"]) for row in state["log_history"] if "loss" in row]
    assert len(expected) == 4 and logged_loss == [(s, pytest.approx(v)) for s, v in expected]
    assert any("eval/loss" in h for h in history)


def test_evaluate_logs_the_predictions_table_and_files_offline(tmp_path: Path):
    rows = [
        {"input": "Human: 你好\n\nAssistant: ", "predict": "你好，有什么可以帮你？", "target": "你好！有什么可以帮你的吗？"},
        {"input": "Human: hi\n\nAssistant: ", "predict": "", "target": "Hello there."},
        {"input": "Human: 2+2?\n\nAssistant: ", "predict": "It is 4.", "target": "It is 4."},
    ]  # fmt: skip
    predictions = tmp_path / "preds" / "predictions.jsonl"
    predictions.parent.mkdir()
    predictions.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    result = run_script(PYTHON, "scripts/evaluate.py", "--predictions_file", str(predictions), "--report_to", "wandb",
                        timeout=120, env=NO_NETWORK | {"WANDB_DIR": str(tmp_path), "HOME": str(tmp_path)})  # fmt: skip
    folder = offline_run(tmp_path)
    assert f"wandb sync {folder}" in result.stderr
    metrics = json.loads((predictions.parent / "metrics.json").read_text())

    (table_file,) = (folder / "files" / "media" / "table").glob("predictions_*.table.json")
    table = json.loads(table_file.read_text())
    assert table["columns"] == ["index", "input", "prediction", "reference", *METRIC_NAMES]
    assert [row[1:4] for row in table["data"]] == [[r["input"], r["predict"], r["target"]] for r in rows]
    assert table["data"][1][4:] == [0.0, 0.0, 0.0, 0.0]  # the empty prediction
    assert sum(row[4 + METRIC_NAMES.index("rouge-l")] for row in table["data"]) / 3 == pytest.approx(
        metrics["rouge-l"]
    )

    records = wandb_records(folder)
    assert of_type(records, "run")[0].job_type == "eval"
    (artifact,) = [a for a in of_type(records, "artifact") if a.type == "evaluation"]
    assert sorted(entry.path for entry in artifact.manifest.contents) == [
        "metrics.json", "metrics_per_sample.jsonl", "predictions.jsonl"
    ]  # fmt: skip
    summary = {
        i.key: json.loads(i.value_json) for s in of_type(records, "summary") for i in s.update if i.key
    }
    assert {name: summary[name] for name in METRIC_NAMES} == pytest.approx(
        {n: metrics[n] for n in METRIC_NAMES}
    )


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_manifest_records_a_dirty_tree_as_dirty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "train.py").write_text("lr = 1e-4\n")
    git(repo, "add", "train.py")
    git(repo, "commit", "-q", "-m", "start")
    commit = git(repo, "rev-parse", "HEAD")
    monkeypatch.setattr(runs, "REPO_ROOT", repo)
    data = tmp_path / "data.json"
    data.write_text("[]")

    def manifest(name: str) -> dict:
        out = tmp_path / name
        out.mkdir()
        runs.write_run_record(out, {"lr": 1e-4}, "x_config.json", [str(data)], seed=7)
        return json.loads((out / "run_manifest.json").read_text())

    clean = manifest("clean")
    assert clean["git"] == {"commit": commit, "dirty": False}
    (repo / "train.py").write_text("lr = 3e-4  # an uncommitted change\n")
    dirty = manifest("dirty")
    assert dirty["git"] == {"commit": commit, "dirty": True}
    assert dirty["seed"] == 7 and dirty["config"] == {"lr": 1e-4}
    assert dirty["data_files"] == {str(data): hashlib.sha256(b"[]").hexdigest()}
