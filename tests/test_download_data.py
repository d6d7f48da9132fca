"""scripts/download_data.py: seeded local splits, file:line errors, and a clear message when offline."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from conftest import PYTHON, run_script


def run_download(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return run_script(PYTHON, "scripts/download_data.py", *args, env=env, check=False, timeout=120)


def write_records(path: Path, count: int) -> list[dict]:
    records = [{"instruction": f"问题 {i}", "input": "" if i % 2 else f"第{i}个", "output": f"答案 {i}"}
               for i in range(count)]  # fmt: skip
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return records


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_input_file_split_is_seeded_disjoint_and_complete(tmp_path: Path) -> None:
    records = write_records(tmp_path / "sample.json", 40)
    for name, seed in (("a", "7"), ("b", "7"), ("c", "8")):
        result = run_download("--input_file", str(tmp_path / "sample.json"), "--output_dir", str(tmp_path / name),
                              "--dev_size", "6", "--seed", seed)  # fmt: skip
        assert result.returncode == 0, result.stderr

    train, dev = (
        read_lines(tmp_path / "a" / "sample.train.json"),
        read_lines(tmp_path / "a" / "sample.dev.json"),
    )
    assert (len(train), len(dev)) == (34, 6)
    as_text = lambda rs: [json.dumps(r, sort_keys=True, ensure_ascii=False) for r in rs]  # noqa: E731
    assert not set(as_text(train)) & set(as_text(dev))
    assert sorted(as_text(train + dev)) == sorted(as_text(records))
    assert all(set(r) == {"instruction", "input", "output"} for r in train + dev)
    for split in ("train", "dev"):  # same seed: the same bytes; another seed: another split
        assert (tmp_path / "a" / f"sample.{split}.json").read_bytes() == (
            tmp_path / "b" / f"sample.{split}.json").read_bytes()  # fmt: skip
    assert read_lines(tmp_path / "c" / "sample.dev.json") != dev


def test_dev_size_is_capped_at_a_quarter(tmp_path: Path) -> None:
    write_records(tmp_path / "sample.json", 40)
    result = run_download("--input_file", str(tmp_path / "sample.json"), "--output_dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "dev_size 1000 is more than a quarter" in result.stderr
    assert len(read_lines(tmp_path / "sample.dev.json")) == 10
    assert len(read_lines(tmp_path / "sample.train.json")) == 30


def test_refuses_existing_outputs(tmp_path: Path) -> None:
    write_records(tmp_path / "sample.json", 8)
    assert (
        run_download("--input_file", str(tmp_path / "sample.json"), "--output_dir", str(tmp_path)).returncode
        == 0
    )
    result = run_download("--input_file", str(tmp_path / "sample.json"), "--output_dir", str(tmp_path))
    assert result.returncode != 0 and "--overwrite" in result.stderr and "Traceback" not in result.stderr


def test_bad_records_name_file_and_line(tmp_path: Path) -> None:
    bad_json = tmp_path / "bad_json.json"
    bad_json.write_text('{"instruction": "a", "output": "b"}\n\n{"instruction": "c", "output": \n')
    missing_output = tmp_path / "missing_output.json"
    missing_output.write_text('{"instruction": "a", "output": "b"}\n{"instruction": "c"}\n')
    for path, line, problem in ((bad_json, 3, "invalid JSON"), (missing_output, 2, "'output' is missing")):
        result = run_download("--input_file", str(path), "--output_dir", str(tmp_path / "out"))
        assert result.returncode != 0
        assert f"error: {path}:{line}: " in result.stderr and problem in result.stderr
        assert "Traceback" not in result.stderr
        assert not (tmp_path / "out" / f"{path.stem}.train.json").exists()


def test_offline_hub_fails_with_one_clear_message(tmp_path: Path) -> None:
    result = run_download("--datasets", "0.5M", "--output_dir", str(tmp_path), env={"HF_HUB_OFFLINE": "1"})
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    error = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(error) == 1
    assert "BelleGroup/train_0.5M_CN" in error[0]
    assert "network" in error[0] and "HF_ENDPOINT" in error[0] and "--input_file" in error[0]
    assert not list(tmp_path.glob("*.json"))
