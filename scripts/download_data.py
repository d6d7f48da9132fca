"""Download BELLE's instruction sets and write seeded train/dev splits as JSON lines.

    python scripts/download_data.py                       # BelleGroup/train_0.5M_CN and train_1M_CN
    python scripts/download_data.py --datasets 0.5M --dev_size 1000 --seed 42
    python scripts/download_data.py --input_file data_dir/sample_sft.json   # split a local file instead

Outputs (in `--output_dir`, default data_dir/): `Belle_open_source_0.5M.train.json` / `.dev.json` and
`Belle_open_source_1M.train.json` / `.dev.json`, or `<stem>.train.json` / `<stem>.dev.json` for
`--input_file`. Each line is `{"instruction", "input", "output"}`. The same data, seed and dev_size
always give the same split. The hub is reached through `datasets` (HF_ENDPOINT picks a mirror).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a file: find `common`

from common.config import ConfigError, config_field, parse_config  # noqa: E402
from common.data import (  # noqa: E402
    DataError,
    check_instruction_records,
    read_json_records,
    split_train_dev,
    write_json_lines,
)
from common.runs import RunError, run_as_script, setup_logging  # noqa: E402

logger = logging.getLogger("download_data")

# BELLE's short names -> (hub dataset, output file stem)
BELLE_DATASETS = {
    "0.5M": ("BelleGroup/train_0.5M_CN", "Belle_open_source_0.5M"),
    "1M": ("BelleGroup/train_1M_CN", "Belle_open_source_1M"),
}
KEYS = ("instruction", "input", "output")


@dataclasses.dataclass
class DownloadConfig:
    datasets: list[str] = config_field(["0.5M", "1M"], f"BELLE sets to download: {', '.join(BELLE_DATASETS)}")
    dev_size: int = config_field(1000, "examples held out in the dev file (for --input_file: at most 1/4)")
    seed: int = config_field(42, "seed of the train/dev split")
    output_dir: str = config_field("data_dir", "folder for the .train.json / .dev.json files")
    input_file: str | None = config_field(
        None, "split this local JSON / JSON lines file instead of downloading (writes <stem>.train/.dev.json)"
    )
    overwrite: bool = config_field(False, "allow replacing existing output files")

    def validate(self) -> None:
        unknown = [name for name in self.datasets if name not in BELLE_DATASETS]
        if unknown or not self.datasets:
            raise ConfigError(
                f"datasets: unknown {unknown or 'empty list'}; choose from {', '.join(BELLE_DATASETS)}"
            )
        if self.dev_size < 1:
            raise ConfigError(f"dev_size must be at least 1, got {self.dev_size}")


def output_paths(output_dir: Path, stem: str, overwrite: bool) -> tuple[Path, Path]:
    """The train and dev files for `stem`; existing ones are refused unless --overwrite."""
    paths = (output_dir / f"{stem}.train.json", output_dir / f"{stem}.dev.json")
    existing = [str(p) for p in paths if p.exists()]
    if existing and not overwrite:
        raise RunError(f"{', '.join(existing)} already exist. Nothing was changed. "
                       "Pass --overwrite to replace them, or choose another --output_dir.")  # fmt: skip
    return paths


def download_records(hub_name: str) -> list[dict[str, Any]]:
    """One BELLE set as instruction records; rows that fail the record check are dropped with a warning."""
    from datasets import load_dataset
    from tqdm import tqdm

    logger.info("downloading %s from %s", hub_name, os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        rows = load_dataset(hub_name, split="train")
    except (ConnectionError, FileNotFoundError, TimeoutError) as err:
        offline = (
            "HF_HUB_OFFLINE is set: unset it, "
            if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
            else ""
        )
        raise RunError(f"cannot download {hub_name} ({err}). {offline}Check the network connection or set "
                       "HF_ENDPOINT to a reachable mirror, or split a local file with --input_file PATH."
                       ) from None  # fmt: skip
    records, dropped = [], []
    for index, row in enumerate(tqdm(rows, desc=f"reading {hub_name}", unit="rows")):
        record = {key: row.get(key) or "" for key in KEYS} | {"_where": f"{hub_name} row {index}"}
        try:
            check_instruction_records([record])
        except DataError as err:
            dropped.append(str(err))
            continue
        records.append(record)
    if dropped:
        logger.warning("dropped %d of %d rows that fail the record check, e.g. %s",
                       len(dropped), len(rows), dropped[0])  # fmt: skip
    return records


def read_local_records(path: str) -> list[dict[str, Any]]:
    """A local file's records, checked (errors name file:line), with only instruction/input/output."""
    records = read_json_records(path)
    check_instruction_records(records)
    return [{key: r.get(key) or "" for key in KEYS} for r in records]


def write_split(records: list[dict[str, Any]], dev_size: int, seed: int, paths: tuple[Path, Path]) -> None:
    """Seeded split, written through `.partial` files so an interrupted run leaves nothing that looks done."""
    train, dev = split_train_dev(records, dev_size, seed)
    for split, path in zip((train, dev), paths, strict=True):
        partial = path.with_name(path.name + ".partial")
        write_json_lines(split, partial)
        os.replace(partial, path)
        logger.info("wrote %d records to %s", len(split), path)


def main(argv: list[str] | None = None) -> list[Path]:
    setup_logging()
    # ---- Config -------------------------------------------------------------------------------
    config = parse_config(DownloadConfig, argv, description=__doc__)
    output_dir = Path(config.output_dir)
    if config.input_file:
        jobs = [(config.input_file, Path(config.input_file).stem)]
    else:
        jobs = [BELLE_DATASETS[name] for name in config.datasets]
    all_paths = [output_paths(output_dir, stem, config.overwrite) for _, stem in jobs]  # refuse before work
    output_dir.mkdir(parents=True, exist_ok=True)

    # ---- Read or download, split, write -------------------------------------------------------
    for (source, _), paths in zip(jobs, all_paths, strict=True):
        if config.input_file:
            records = read_local_records(source)
            if len(records) < 2:
                raise DataError(f"{source}: {len(records)} record(s); a train/dev split needs at least 2")
            dev_size = min(config.dev_size, max(1, len(records) // 4))
            if dev_size < config.dev_size:
                logger.warning("dev_size %d is more than a quarter of the %d records in %s; using %d",
                               config.dev_size, len(records), source, dev_size)  # fmt: skip
        else:
            records = download_records(source)
            dev_size = config.dev_size
            if dev_size >= len(records):
                raise DataError(
                    f"{source}: dev_size {dev_size} leaves no training data ({len(records)} rows)"
                )
        write_split(records, dev_size, config.seed, paths)
    written = [path for paths in all_paths for path in paths]
    logger.info("done: %s", ", ".join(str(p) for p in written))
    return written


if __name__ == "__main__":
    run_as_script(main)
