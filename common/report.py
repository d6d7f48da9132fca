"""What the evaluation report shows, as functions the tests can call (the notebook only presents them).

- `load_run(run_dir)`: the resolved config, run_manifest.json and trainer_state.json of a run folder.
- `training_curves(state)` / `plot_loss(output_dir)`: loss and learning-rate curves; `plot_loss` saves
  `training_loss.png` in the run folder at the end of training (LLaMA-Factory's `--plot_loss` habit).
- `read_predictions`, `read_metrics`, `metrics_table`, `worst_samples`, `length_summary`: the metric and
  sample tables of `notebooks/eval_report.ipynb`.
- `read_generation_settings` / `settings_summary`: what generate.py used (<predictions>.settings.json).
- `training_overlap`: dev prompts that also occur in the run's training data (a warning with counts).

Figures are built with `matplotlib.figure.Figure` (no pyplot), so saving works on machines without a
display and nothing leaks between calls.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from common.metrics import METRIC_NAMES

logger = logging.getLogger(__name__)

LOSS_PLOT_NAME = "training_loss.png"


# ---- Run folder ---------------------------------------------------------------------------------


def find_config(run_dir: str | Path) -> tuple[str, dict[str, Any]] | None:
    """(file name, resolved config) of a run: finetune_config.json, else the one other *_config.json."""
    run_dir = Path(run_dir)
    candidates = [run_dir / "finetune_config.json"] + sorted(
        p for p in run_dir.glob("*_config.json") if ".before-" not in p.name
    )
    for path in candidates:
        if path.is_file():
            return path.name, json.loads(path.read_text())
    return None


def load_run(run_dir: str | Path) -> dict[str, Any]:
    """What a run folder says about itself; a missing file is None, not an error (old or partial runs)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {run_dir} does not exist")

    def read(name: str) -> Any:
        path = run_dir / name
        return json.loads(path.read_text()) if path.is_file() else None

    found = find_config(run_dir)
    return {
        "run_dir": str(run_dir),
        "config_name": found[0] if found else None,
        "config": found[1] if found else None,
        "manifest": read("run_manifest.json"),
        "trainer_state": read("trainer_state.json"),
        "train_results": read("train_results.json"),
        "eval_results": read("eval_results.json"),
    }


def flatten(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}, so a nested config reads as one two-column table."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat |= flatten(value, f"{name}.")
        else:
            flat[name] = value
    return flat


def manifest_summary(manifest: dict[str, Any] | None) -> dict[str, Any]:
    """The environment part of run_manifest.json, one line per fact (the config has its own table)."""
    if not manifest:
        return {"run_manifest.json": "missing"}
    git = manifest.get("git") or {}
    summary: dict[str, Any] = {
        "created": manifest.get("created"),
        "command": " ".join(manifest.get("command") or []),
        "cwd": manifest.get("cwd"),
        "git commit": git.get("commit"),
        "git dirty": git.get("dirty"),
        "seed": manifest.get("seed"),
    }
    for path, digest in (manifest.get("data_files") or {}).items():
        summary[f"data sha256: {path}"] = digest
    summary |= {f"hardware.{k}": v for k, v in (manifest.get("hardware") or {}).items()}
    summary |= {f"version: {k}": v for k, v in (manifest.get("packages") or {}).items()}
    return summary


# ---- Curves -------------------------------------------------------------------------------------


def log_history(state: dict[str, Any] | None) -> tuple[list[dict], list[dict]]:
    """(training log rows with a loss, evaluation rows with an eval_loss) from trainer_state.json."""
    history = (state or {}).get("log_history", [])
    train = [row for row in history if "loss" in row and "step" in row]
    evaluation = [row for row in history if "eval_loss" in row and "step" in row]
    return train, evaluation


def training_curves(state: dict[str, Any] | None) -> Any:
    """A figure: training and evaluation loss by step (left), learning rate by step (right)."""
    from matplotlib.figure import Figure

    train, evaluation = log_history(state)
    figure = Figure(figsize=(11, 3.8), layout="constrained")
    loss_axes, lr_axes = figure.subplots(1, 2)
    if train:
        loss_axes.plot([r["step"] for r in train], [r["loss"] for r in train], marker=".", label="train")
    if evaluation:
        loss_axes.plot(
            [r["step"] for r in evaluation], [r["eval_loss"] for r in evaluation], marker="o", label="eval"
        )
    loss_axes.set(title="loss", xlabel="step")
    if train or evaluation:
        loss_axes.legend()
    else:
        loss_axes.text(0.5, 0.5, nothing_logged_note(state, "loss"), ha="center", va="center",
                       transform=loss_axes.transAxes)  # fmt: skip
    rates = [r for r in train if "learning_rate" in r]
    lr_axes.plot([r["step"] for r in rates], [r["learning_rate"] for r in rates], marker=".")
    lr_axes.set(title="learning rate", xlabel="step")
    if not rates:
        lr_axes.text(0.5, 0.5, nothing_logged_note(state, "learning rate"), ha="center", va="center",
                     wrap=True, transform=lr_axes.transAxes)  # fmt: skip
    return figure


def nothing_logged_note(state: dict[str, Any] | None, what: str) -> str:
    """Why a curve is empty: usually logging_steps larger than the number of steps the run took."""
    state = state or {}
    logging_steps, steps = state.get("logging_steps"), state.get("global_step")
    if isinstance(logging_steps, int) and isinstance(steps, int) and logging_steps > steps:
        return f"no {what} logged:\nlogging_steps {logging_steps} > the {steps} step(s) run"
    if not state:
        return f"no {what} logged:\nno trainer_state.json"
    return f"no {what} logged"


def png(figure: Any) -> bytes:
    """The figure as PNG bytes (what the notebook displays and the HTML export embeds)."""
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def plot_loss(output_dir: str | Path) -> Path | None:
    """Save the loss curves of `output_dir/trainer_state.json` as training_loss.png (None: no state)."""
    output_dir = Path(output_dir)
    state_file = output_dir / "trainer_state.json"
    if not state_file.is_file():
        return None
    figure = training_curves(json.loads(state_file.read_text()))
    path = output_dir / LOSS_PLOT_NAME
    figure.savefig(path, dpi=100)
    return path


# ---- Predictions and metrics --------------------------------------------------------------------


def read_predictions(path: str | Path) -> list[dict[str, str]]:
    """generate.py's JSON lines {"input", "predict", "target"}; a bad line is an error naming file:line."""
    from common.data import DataError, read_json_records

    rows = []
    for record in read_json_records(str(path)):
        for key in ("predict", "target"):
            if not isinstance(record.get(key), str):
                raise DataError(
                    f"{record['_where']}: '{key}' must be a string (a generate.py predictions file)"
                )
        rows.append(
            {"input": record.get("input") or "", "predict": record["predict"], "target": record["target"]}
        )
    return rows


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def read_metrics(path: str | Path | None) -> dict[str, Any] | None:
    return json.loads(Path(path).read_text()) if path and Path(path).is_file() else None


def metrics_table(metrics: dict[str, Any], baseline: dict[str, Any] | None = None) -> Any:
    """One row per metric (x100, mean over samples): this run, and the baseline with the difference."""
    import pandas as pd

    rows = []
    for name in METRIC_NAMES:
        row: dict[str, Any] = {"metric": name, "run": metrics.get(name)}
        if baseline is not None:
            row["baseline"] = baseline.get(name)
            both = isinstance(row["run"], int | float) and isinstance(row["baseline"], int | float)
            row["difference"] = row["run"] - row["baseline"] if both else None
        rows.append(row)
    return pd.DataFrame(rows).set_index("metric")


def worst_samples(rows: list[dict[str, str]], per_sample: list[dict[str, float]], count: int) -> Any:
    """The `count` samples with the lowest ROUGE-L (ties: lowest ROUGE-1): prompt, prediction, reference."""
    import pandas as pd

    if len(rows) != len(per_sample):
        raise ValueError(f"{len(rows)} predictions but {len(per_sample)} per-sample scores")
    table = pd.DataFrame(
        [
            {
                "index": i,
                **{m: s[m] for m in METRIC_NAMES},
                "prompt": r["input"],
                "prediction": r["predict"],
                "reference": r["target"],
            }
            for i, (r, s) in enumerate(zip(rows, per_sample, strict=True))
        ]
    )
    if table.empty:
        return table
    return table.sort_values(["rouge-l", "rouge-1", "index"], kind="stable").head(count).set_index("index")


def length_summary(rows: list[dict[str, str]]) -> Any:
    """Character lengths of predictions and references: count, mean, quartiles, max, empties."""
    import pandas as pd

    lengths = pd.DataFrame(
        {"prediction": [len(r["predict"]) for r in rows], "reference": [len(r["target"]) for r in rows]}
    )
    summary = lengths.describe().T
    summary["empty"] = (lengths == 0).sum()
    return summary


def length_histogram(rows: list[dict[str, str]]) -> Any:
    """Overlaid histograms of prediction and reference length in characters."""
    from matplotlib.figure import Figure

    predicted = [len(r["predict"]) for r in rows]
    reference = [len(r["target"]) for r in rows]
    figure = Figure(figsize=(7, 3.5), layout="constrained")
    axes = figure.subplots()
    top = max([*predicted, *reference, 1])
    bins = min(40, max(5, int(math.sqrt(len(rows) or 1)) * 2))
    edges = [top * i / bins for i in range(bins + 1)]
    axes.hist(reference, bins=edges, alpha=0.6, label="reference")
    axes.hist(predicted, bins=edges, alpha=0.6, label="prediction")
    axes.set(title="answer length", xlabel="characters", ylabel="samples")
    axes.legend()
    return figure


def load_evaluation(predictions_file: str | Path) -> tuple[list[dict], dict[str, Any], list[dict]]:
    """(predictions, metrics.json, per-sample scores) written by scripts/evaluate.py beside the predictions."""
    predictions_file = Path(predictions_file)
    metrics_file = predictions_file.with_name(METRICS_FILE)
    per_sample_file = predictions_file.with_name(PER_SAMPLE_FILE)
    for path in (predictions_file, metrics_file, per_sample_file):
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} not found; run `python scripts/evaluate.py --predictions_file {predictions_file}` first"
            )
    return read_predictions(predictions_file), read_metrics(metrics_file), read_jsonl(per_sample_file)


METRICS_FILE = "metrics.json"
PER_SAMPLE_FILE = "metrics_per_sample.jsonl"


def score_predictions_file(predictions_file: Path, output_dir: Path) -> tuple[dict, list, list]:
    """Score generate.py's predictions (common/metrics.py) and write metrics.json and metrics_per_sample.jsonl
    into output_dir. Returns (metrics, rows, per-sample scores); scripts/evaluate.py and the report share it."""
    from statistics import fmean

    from tqdm import tqdm

    from common.metrics import score_pair

    rows = read_predictions(predictions_file)
    logger.info("%d predictions from %s", len(rows), predictions_file)
    per_sample = [score_pair(r["predict"], r["target"]) for r in tqdm(rows, desc="scoring")]
    metrics: dict = {name: fmean(s[name] for s in per_sample) if per_sample else 0.0 for name in METRIC_NAMES}
    metrics |= {
        "num_samples": len(rows),
        "empty_predictions": sum(not r["predict"].strip() for r in rows),
        "predictions_file": str(predictions_file),
    }
    output_dir.mkdir(parents=True, exist_ok=True)
    with open(output_dir / PER_SAMPLE_FILE, "w", encoding="utf-8") as out:
        for index, scores in enumerate(per_sample):
            out.write(json.dumps({"index": index, **scores}) + "\n")
    (output_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")
    logger.info("wrote %s and %s", output_dir / METRICS_FILE, output_dir / PER_SAMPLE_FILE)
    return metrics, rows, per_sample


# ---- Generation settings and dev/train overlap --------------------------------------------------


def settings_file_for(predictions_file: str | Path) -> Path:
    """generate.py writes its settings beside the predictions: predictions.jsonl -> predictions.settings.json."""
    return Path(predictions_file).with_suffix(".settings.json")


def read_generation_settings(predictions_file: str | Path) -> dict[str, Any] | None:
    path = settings_file_for(predictions_file)
    return json.loads(path.read_text()) if path.is_file() else None


def settings_summary(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings as one line per fact; package versions limited to the ones that change generation."""
    summary = flatten({k: v for k, v in settings.items() if k != "versions"})
    versions = settings.get("versions") or {}
    for name in ("python", "torch", "transformers", "peft", "tokenizers", "accelerate", "bitsandbytes"):
        if versions.get(name):
            summary[f"version: {name}"] = versions[name]
    return summary


def dev_records(settings: dict[str, Any]) -> list[dict[str, Any]]:
    """The dev examples generate.py answered, normalised (an alpaca dev file may lack `output`)."""
    from common.data import (
        _alpaca_messages,
        load_mixed,
        read_records,
        resolve_specs,
        spec_from_path,
    )

    dev = settings["dev_data"]
    if dev.get("dataset"):
        specs = resolve_specs(dev["dataset"], None, dev.get("dataset_dir") or "data_dir")
        return load_mixed(specs, dev.get("dataset_dir") or "data_dir", True, dev.get("max_samples"))
    spec = spec_from_path(dev["dev_file"])
    if (spec.formatting, spec.kind) != ("alpaca", "sft"):
        return load_mixed([spec], skip_bad_records=True, max_samples=dev.get("max_samples"))
    records = []
    for record in read_records(dev["dev_file"], problems=[])[: dev.get("max_samples")]:
        try:
            records.append({"messages": _alpaca_messages(record, spec, None)})
        except ValueError:  # a record generate.py skipped
            continue
    return records


def training_overlap(run_config: dict[str, Any] | None, settings: dict[str, Any] | None) -> dict[str, Any]:
    """Dev prompts that also occur in the run's training data (its dataset or data_path, max_samples each;
    its own held-out split counts as training data) with a warning sentence (None: no overlap), or
    {"unknown": why}."""
    from common.data import load_mixed, overlap_warning, prompt_overlap, resolve_specs

    if settings is None:
        return {"unknown": "no generation settings file, so the dev data is unknown"}
    if not run_config or not (run_config.get("dataset") or run_config.get("data_path")):
        return {"unknown": "the run's config names no training data (dataset / data_path)"}
    dataset_dir = run_config.get("dataset_dir") or "data_dir"
    specs = resolve_specs(run_config.get("dataset"), run_config.get("data_path"), dataset_dir)
    train = load_mixed(specs, dataset_dir, True, run_config.get("max_samples"), run_config.get("seed", 42))
    overlap = prompt_overlap(dev_records(settings), train)
    return overlap | {"warning": overlap_warning(overlap)}
