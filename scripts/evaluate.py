"""Score a predictions file from generate.py: BLEU-4 and ROUGE-1/2/L, as LLaMA-Factory reports them.

    python scripts/evaluate.py --predictions_file trained_models/tiny-llama/predictions.jsonl
    python scripts/evaluate.py --predictions_file outputs/run1/predictions.jsonl --report_to wandb

Writes, next to the predictions (or in --output_dir):
  metrics.json                 the mean of each metric over samples (x100), the sample count
  metrics_per_sample.jsonl     one line of scores per prediction, in file order (the report's worst-first table)
An existing metrics.json is kept unless --overwrite. Metric definitions: common/metrics.py.
With --report_to wandb the metrics, a table of predictions and the two files go to a W&B "eval" run
(offline without an API key; the log says how to `wandb sync` it).
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a file: find `common`

from common.config import config_field, parse_config  # noqa: E402
from common.runs import RunError, run_as_script, setup_logging  # noqa: E402
from common.settings import WandbSettings  # noqa: E402

logger = logging.getLogger("evaluate")


@dataclasses.dataclass
class EvaluateConfig(WandbSettings):  # report_to wandb: metrics and predictions
    predictions_file: str = config_field(
        "trained_models/tiny-llama/predictions.jsonl",
        'generate.py output: JSON lines {"input", "predict", "target"}',
    )
    output_dir: str | None = config_field(
        None, "where metrics.json goes (null: the predictions file's folder)"
    )
    overwrite: bool = config_field(False, "allow replacing an existing metrics.json")


def main(argv: list[str] | None = None) -> Path:
    setup_logging()
    # ---- Config -------------------------------------------------------------------------------
    config = parse_config(EvaluateConfig, argv, description=__doc__)
    predictions_file = Path(config.predictions_file)
    output_dir = Path(config.output_dir) if config.output_dir else predictions_file.parent
    from common.report import METRICS_FILE, PER_SAMPLE_FILE, score_predictions_file

    metrics_file = output_dir / METRICS_FILE
    if metrics_file.exists() and not config.overwrite:
        raise RunError(f"{metrics_file} already exists. Nothing was changed. Pass --overwrite to replace it, "
                       "or choose another --output_dir.")  # fmt: skip

    # ---- Score and save -------------------------------------------------------------------------
    from common.metrics import METRIC_NAMES

    metrics, rows, per_sample = score_predictions_file(predictions_file, output_dir)
    print(" ".join(f"{name} {metrics[name]:.2f}" for name in METRIC_NAMES))

    # ---- Track --------------------------------------------------------------------------------
    if config.report_to == "wandb":
        from common.runs import log_eval_to_wandb

        log_eval_to_wandb(
            config.wandb_project,
            config.run_name or f"eval-{predictions_file.parent.name}",
            metrics,
            rows,
            per_sample,
            files=[predictions_file, metrics_file, output_dir / PER_SAMPLE_FILE],
        )
    return metrics_file


if __name__ == "__main__":
    run_as_script(main)
