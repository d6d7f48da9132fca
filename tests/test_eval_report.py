"""The evaluation workflow end to end on a tiny run: finetune (loss PNG) -> generate -> evaluate ->
make_report (papermill + HTML), and the executed notebook shows the numbers of metrics.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest

from common.metrics import METRIC_NAMES, score_predictions
from conftest import PYTHON, REPO, run_script


@pytest.fixture(scope="module")
def tiny_run(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 6-step run with 2 evaluations, 8 predictions of 8 tokens, and their metrics. The predictions are
    made on the run's own training file, so the report must warn that the dev prompts were trained on."""
    run_dir = tmp_path_factory.mktemp("eval") / "tiny-run"
    run_script(PYTHON, "scripts/finetune.py", "--model_name_or_path", str(tiny_llama),
               "--data_path", "data_dir/sample_sft.train.json", "--max_steps", "6", "--logging_steps", "1",
               "--eval_steps", "3", "--learning_rate", "1e-3", "--output_dir", str(run_dir))  # fmt: skip
    run_script(PYTHON, "scripts/generate.py", "--model_name_or_path", str(run_dir),
               "--dev_file", "data_dir/sample_sft.train.json", "--max_samples", "8", "--max_new_tokens", "8")  # fmt: skip
    run_script(PYTHON, "scripts/evaluate.py", "--predictions_file", str(run_dir / "predictions.jsonl"))
    return run_dir


@pytest.fixture(scope="module")
def kernel_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A JUPYTER_PATH whose "belle-finetune" kernel runs this interpreter: the user-level kernel belongs to
    whichever clone registered it last, and the test must neither depend on nor change it."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "belle-finetune (test)", "language": "python"}  # fmt: skip
    (root / "kernels" / "belle-finetune").mkdir(parents=True)
    (root / "kernels" / "belle-finetune" / "kernel.json").write_text(json.dumps(spec))
    return root


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_training_saves_the_loss_curve_png(tiny_run: Path):
    png = (tiny_run / "training_loss.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000  # a drawn figure, not an empty file


def test_metrics_json_matches_an_independent_scoring_of_the_predictions(tiny_run: Path):
    predictions = read_lines(tiny_run / "predictions.jsonl")
    assert len(predictions) == 8
    means, per_sample = score_predictions(
        [p["predict"] for p in predictions], [p["target"] for p in predictions]
    )
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert {name: metrics[name] for name in METRIC_NAMES} == pytest.approx(means)
    assert metrics["num_samples"] == 8
    saved = read_lines(tiny_run / "metrics_per_sample.jsonl")
    assert [s["index"] for s in saved] == list(range(8))
    assert [{n: s[n] for n in METRIC_NAMES} for s in saved] == [pytest.approx(s) for s in per_sample]


def test_evaluate_refuses_to_overwrite_and_names_a_bad_line(tiny_run: Path, tmp_path: Path):
    before = (tiny_run / "metrics.json").read_text()
    result = run_script(PYTHON, "scripts/evaluate.py", "--predictions_file", str(tiny_run / "predictions.jsonl"),
                        check=False)  # fmt: skip
    assert result.returncode != 0 and "already exists" in result.stderr and "--overwrite" in result.stderr
    assert (tiny_run / "metrics.json").read_text() == before
    bad = tmp_path / "predictions.jsonl"
    bad.write_text(
        '{"input": "q", "predict": "a", "target": "a"}\n{"input": "q", "predict": 3, "target": "b"}\n'
    )
    result = run_script(PYTHON, "scripts/evaluate.py", "--predictions_file", str(bad), check=False)
    assert result.returncode != 0
    assert (
        result.stderr.strip().splitlines()[-1]
        == f"error: {bad}:2: 'predict' must be a string (a generate.py predictions file)"
    )
    assert "Traceback" not in result.stderr


def metric_rows(notebook: Path) -> dict[str, list[float]]:
    """The numbers shown by the cell tagged "metrics", parsed from its text output, by metric name."""
    cell = next(
        c for c in nbformat.read(notebook, as_version=4).cells if "metrics" in c.metadata.get("tags", [])
    )
    (text,) = [o["data"]["text/plain"] for o in cell.outputs if o.get("output_type") == "execute_result"]
    rows = {}
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] in METRIC_NAMES:
            rows[fields[0]] = [float(f) for f in fields[1:]]
    return rows


def test_report_notebook_shows_the_metrics_of_the_run_and_the_baseline(
    tiny_run: Path, kernel_path: Path, tmp_path: Path
):
    # A baseline that copies the reference for every other sample, so its scores are far from 0.
    baseline = tmp_path / "baseline"
    baseline.mkdir()
    rows = read_lines(tiny_run / "predictions.jsonl")
    for i, row in enumerate(rows):
        row["predict"] = row["target"] if i % 2 == 0 else row["predict"]
    (baseline / "predictions.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    )
    run_script(PYTHON, "scripts/evaluate.py", "--predictions_file", str(baseline / "predictions.jsonl"))

    report_dir = tmp_path / "report"
    run_script(PYTHON, "scripts/make_report.py", "--run_dir", str(tiny_run), "--baseline_run_dir", str(baseline),
               "--output_dir", str(report_dir), "--num_worst", "5", env={"JUPYTER_PATH": str(kernel_path)})  # fmt: skip

    run_metrics = json.loads((tiny_run / "metrics.json").read_text())
    base_metrics = json.loads((baseline / "metrics.json").read_text())
    assert base_metrics["rouge-l"] > 40  # half the samples are perfect
    shown = metric_rows(report_dir / "eval_report.ipynb")
    assert set(shown) == set(METRIC_NAMES)
    for name in METRIC_NAMES:  # run, baseline, difference, printed with 4 decimals
        expected = [run_metrics[name], base_metrics[name], run_metrics[name] - base_metrics[name]]
        assert shown[name] == pytest.approx(expected, abs=1e-4), name

    notebook = nbformat.read(report_dir / "eval_report.ipynb", as_version=4)
    assert not [o for c in notebook.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    images = [o for c in notebook.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 2  # training curves and the length histogram
    html = (report_dir / "eval_report.html").read_text()
    assert html.count("data:image/png;base64") >= 2 and str(tiny_run.resolve()) in html
    assert "worst" in html.lower() and "git dirty" in html  # the worst-first table and the manifest
    outputs = json.dumps([c.get("outputs", []) for c in notebook.cells], ensure_ascii=False)
    assert "Warning: 8 of 8 dev prompts (100%) also occur in the 240 training records" in outputs
    worst = next(c for c in notebook.cells if "report.worst_samples(" in c.source)
    table = worst.outputs[0]["data"]["text/html"]
    assert ">prompt</th>" in table and ">prediction</th>" in table and ">reference</th>" in table
    first = read_lines(tiny_run / "predictions.jsonl")[0]["input"]
    assert first.startswith("Human: ") and html_escape(first.splitlines()[0][:40]) in outputs
    settings = json.loads((tiny_run / "predictions.settings.json").read_text())
    for shown in ("decoding.max_new_tokens", "dev_data.files_sha256.data_dir/sample_sft.train.json",
                  settings["dev_data"]["files_sha256"]["data_dir/sample_sft.train.json"], "version: torch"):  # fmt: skip
        assert shown in outputs, shown


def test_report_worst_samples_come_lowest_rouge_first():
    from common.report import worst_samples

    rows = [{"input": "", "predict": p, "target": t} for p, t in [("a b", "a b"), ("x", "y"), ("a c", "a b")]]
    per_sample = [
        {"bleu-4": 0.0, "rouge-1": r1, "rouge-2": 0.0, "rouge-l": rl}
        for r1, rl in [(100, 100), (0, 0), (50, 50)]
    ]
    table = worst_samples(rows, per_sample, 2)
    assert list(table.index) == [1, 2] and list(table["prediction"]) == ["x", "a c"]


def html_escape(text: str) -> str:
    import html

    return json.dumps(html.escape(text), ensure_ascii=False)[1:-1]


def test_empty_curves_say_why():
    from common.report import training_curves

    state = {"logging_steps": 10, "global_step": 2, "log_history": [{"train_loss": 1.0, "step": 2}]}
    loss_axes, lr_axes = training_curves(state).axes
    for axes, what in ((loss_axes, "loss"), (lr_axes, "learning rate")):
        assert [t.get_text() for t in axes.texts] == [
            f"no {what} logged:\nlogging_steps 10 > the 2 step(s) run"
        ]
    logged = {"log_history": [{"loss": 1.0, "learning_rate": 1e-3, "step": 1}], "logging_steps": 1}
    assert [list(a.texts) for a in training_curves(logged).axes] == [[], []]


def test_kernel_check_resolves_a_symlinked_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """`.venv` as a link to the environment is the same Python; another environment still is not."""
    monkeypatch.syspath_prepend(str(REPO / "scripts"))
    from make_report import check_kernel

    from common.runs import RunError

    link = tmp_path / "venv-link"
    link.symlink_to(Path(sys.executable).parent.parent, target_is_directory=True)
    for name, python in (
        ("linked", link / "bin" / Path(sys.executable).name),
        ("other", "/elsewhere/bin/python"),
    ):
        (tmp_path / "kernels" / name).mkdir(parents=True)
        spec = {"argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"], "display_name": name,
                "language": "python"}  # fmt: skip
        (tmp_path / "kernels" / name / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    check_kernel("linked")
    with pytest.raises(RunError, match="runs /elsewhere/bin/python, not this environment's Python"):
        check_kernel("other")


def test_make_report_refuses_a_kernel_of_another_environment(tiny_run: Path, tmp_path: Path):
    spec_dir = tmp_path / "kernels" / "belle-finetune"
    spec_dir.mkdir(parents=True)
    spec = {"argv": ["/elsewhere/.venv/bin/python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "other clone", "language": "python"}  # fmt: skip
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    result = run_script(PYTHON, "scripts/make_report.py", "--run_dir", str(tiny_run), "--output_dir",
                        str(tmp_path / "r"), env={"JUPYTER_PATH": str(tmp_path)}, check=False)  # fmt: skip
    assert result.returncode != 0
    assert "runs /elsewhere/.venv/bin/python" in result.stderr and "ipykernel install" in result.stderr
    assert not (tmp_path / "r").exists()
