"""One command per evaluation report: score the predictions (if not done yet), run the report notebook
with papermill, and export it to HTML.

    python scripts/make_report.py --run_dir trained_models/tiny-llama
    python scripts/make_report.py --run_dir outputs/lora-run --baseline_run_dir outputs/full-run --report_to wandb

The same, step by step:

    python scripts/evaluate.py --predictions_file <run>/predictions.jsonl
    papermill notebooks/eval_report.ipynb reports/<run>/eval_report.ipynb -k belle-finetune --cwd . \\
        -p run_dir <run> -p predictions_file <run>/predictions.jsonl
    jupyter nbconvert --to html reports/<run>/eval_report.ipynb

Writes reports/<run folder name>/eval_report.ipynb and eval_report.html (refused if they exist, unless
--overwrite). The notebook runs in the Jupyter kernel "belle-finetune" that scripts/setup_env.sh
registers for the project's virtual environment. With --report_to wandb, the metrics, the predictions
table and the report HTML go to a W&B "eval" run (offline without an API key).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a file: find `common`

from common.config import config_field, parse_config  # noqa: E402
from common.runs import RunError, run_as_script, setup_logging  # noqa: E402
from common.settings import WandbSettings  # noqa: E402

logger = logging.getLogger("make_report")
REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "notebooks" / "eval_report.ipynb"
KERNEL_FIX = "python -m ipykernel install --user --name belle-finetune  (scripts/setup_env.sh does this)"


@dataclasses.dataclass
class ReportConfig(WandbSettings):  # report_to wandb: metrics, predictions and the report HTML
    run_dir: str = config_field("trained_models/tiny-llama", "the training run's output folder")
    predictions_file: str | None = config_field(
        None, "generate.py output (null: <run_dir>/predictions.jsonl)"
    )
    baseline_run_dir: str | None = config_field(None, "a run folder with metrics.json to compare with")
    num_worst: int = config_field(20, "how many lowest-ROUGE samples the report shows")
    output_dir: str | None = config_field(None, "where the report goes (null: reports/<run_dir's name>)")
    overwrite: bool = config_field(False, "allow replacing an existing report")
    kernel: str = config_field("belle-finetune", "Jupyter kernel that runs the notebook")


def check_kernel(name: str) -> None:
    """The kernel must exist and run this environment's Python, or the report would silently use
    another environment's packages (a user-level kernel is shared by every clone on the machine)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel:
        raise RunError(f"no Jupyter kernel named {name!r}; register it with: {KERNEL_FIX}") from None
    kernel_python = spec.argv[0] if spec.argv else ""
    here = os.path.dirname(os.path.abspath(sys.executable))
    # The folders are compared with symlinks resolved (.venv may be a link to the environment), but not the
    # interpreter itself: every venv's python links to the same base interpreter.
    same = os.path.realpath(os.path.dirname(kernel_python)) == os.path.realpath(here)
    if os.path.isabs(kernel_python) and not same:
        raise RunError(f"the Jupyter kernel {name!r} runs {kernel_python}, not this environment's Python in {here}; "
                       f"re-register it from this environment: {KERNEL_FIX}")  # fmt: skip


def main(argv: list[str] | None = None) -> Path:
    setup_logging()
    # ---- Config -------------------------------------------------------------------------------
    config = parse_config(ReportConfig, argv, description=__doc__)
    run_dir = Path(config.run_dir)
    if not run_dir.is_dir():
        raise RunError(f"run folder {run_dir} does not exist")
    predictions_file = (
        Path(config.predictions_file) if config.predictions_file else run_dir / "predictions.jsonl"
    )
    if not predictions_file.is_file():
        raise RunError(f"{predictions_file} not found; write it with `python scripts/generate.py "
                       f"--model_name_or_path {run_dir} --output_file {predictions_file}`")  # fmt: skip
    output_dir = Path(config.output_dir) if config.output_dir else REPO / "reports" / run_dir.resolve().name
    notebook, html = output_dir / "eval_report.ipynb", output_dir / "eval_report.html"
    for path in (notebook, html):
        if path.exists() and not config.overwrite:
            raise RunError(f"{path} already exists. Nothing was changed. Pass --overwrite to replace it, "
                           "or choose another --output_dir.")  # fmt: skip
    check_kernel(config.kernel)

    # ---- Score --------------------------------------------------------------------------------
    if predictions_file.with_name("metrics.json").is_file():
        logger.info("using the existing %s", predictions_file.with_name("metrics.json"))
    else:
        from common.report import score_predictions_file

        score_predictions_file(predictions_file, predictions_file.parent)

    # ---- Execute ------------------------------------------------------------------------------
    import papermill
    from nbconvert import HTMLExporter

    output_dir.mkdir(parents=True, exist_ok=True)
    parameters = {
        "run_dir": str(run_dir.resolve()),
        "predictions_file": str(predictions_file.resolve()),
        "baseline_run_dir": str(Path(config.baseline_run_dir).resolve()) if config.baseline_run_dir else None,
        "num_worst": config.num_worst,
    }
    logger.info("running %s in kernel %s", NOTEBOOK.relative_to(REPO), config.kernel)
    try:
        papermill.execute_notebook(
            str(NOTEBOOK), str(notebook), parameters=parameters, kernel_name=config.kernel, cwd=str(REPO)
        )
    except papermill.PapermillExecutionError as err:  # the executed notebook shows the traceback in place
        raise RunError(f"the report notebook failed in cell {err.exec_count} ({err.ename}: {err.evalue}); "
                       f"see {notebook}") from None  # fmt: skip
    body, _ = HTMLExporter().from_filename(str(notebook))
    html.write_text(body, encoding="utf-8")
    print(f"Report: {notebook}\n        {html}")

    # ---- Track --------------------------------------------------------------------------------
    if config.report_to == "wandb":
        from common.report import load_evaluation, settings_file_for
        from common.runs import log_eval_to_wandb

        rows, metrics, per_sample = load_evaluation(predictions_file)
        settings_file = settings_file_for(predictions_file)
        log_eval_to_wandb(
            config.wandb_project,
            config.run_name or f"report-{run_dir.resolve().name}",
            metrics,
            rows,
            per_sample,
            files=[predictions_file, predictions_file.with_name("metrics.json"), html]
            + ([settings_file] if settings_file.is_file() else []),
            config={"report_parameters": json.loads(json.dumps(parameters))},
        )
    return html


if __name__ == "__main__":
    run_as_script(main)
