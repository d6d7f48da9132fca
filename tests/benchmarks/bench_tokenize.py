"""Benchmark (not a test): template and tokenise 100k alpaca-style samples, then load them from cache.

    .venv/bin/python tests/benchmarks/bench_tokenize.py                # 100k samples, 2 processes
    .venv/bin/python tests/benchmarks/bench_tokenize.py --samples 20000 --num_proc 1

The samples are the shipped data_dir/sample_sft.json repeated with a numbered suffix (so no two are
equal), written to a temporary folder. Targets on the 2-core CI machine: <= 60 s first run, <= 5 s cached.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--num_proc", type=int, default=2)
    parser.add_argument("--template", default="belle")
    parser.add_argument("--tokenizer", default=str(REPO / "models/tiny-llama"))
    parser.add_argument("--cutoff_len", type=int, default=512)
    args = parser.parse_args(argv)

    from common.data import load_tokenised, read_json_records, resolve_specs
    from common.modeling import load_tokenizer
    from common.runs import setup_logging

    setup_logging()
    logging.getLogger("common.data").setLevel(logging.INFO)
    base = read_json_records(REPO / "data_dir/sample_sft.json")
    tokenizer = load_tokenizer(args.tokenizer)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "synthetic_sft.json"
        with open(data, "w", encoding="utf-8") as out:
            for i in range(args.samples):
                r = base[i % len(base)]
                row = {"instruction": f"{r['instruction']} ({i})", "input": r.get("input", ""), "output": r["output"]}
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
        specs = resolve_specs(None, str(data), REPO / "data_dir")
        timings = {}
        for run in ("first", "cached"):
            start = time.perf_counter()
            dataset = load_tokenised(specs, tokenizer, args.template, args.cutoff_len, num_proc=args.num_proc,
                                     cache_dir=Path(tmp) / "cache")  # fmt: skip
            timings[run] = time.perf_counter() - start
            tokens = sum(len(ids) for ids in dataset["input_ids"]) if run == "first" else None
            print(f"{run}: {len(dataset)} samples in {timings[run]:.1f} s" + (f", {tokens:,} tokens" if tokens else ""))
    return timings


if __name__ == "__main__":
    main()
