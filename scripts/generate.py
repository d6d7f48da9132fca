"""Generate answers for a dev file with a fine-tuned model (full model, or base + LoRA adapter).

BELLE's arguments work unchanged:

    python scripts/generate.py --dev_file data_dir/Belle_open_source_0.5M.dev.json \\
        --model_name_or_path trained_models/bloom/
    python scripts/generate.py --dev_file data_dir/Belle_open_source_0.5M.dev.json \\
        --model_name_or_path models/tiny-llama --lora_weights trained_models/lora-llama --llama

Prompts use `--template` (default BELLE's `Human: {instruction}\\n\\nAssistant: `; any name from
common/templates.py, the same one the model was trained with), tokenised exactly as in training, and
decoded by common/generation.py's engine: up to `--batch_size` answers at once, longest prompts first, a
finished answer's place taken at once by the next prompt (beam search: left-padded generate() batches).
`--dataset NAME` takes the dev data from data_dir/dataset_info.json; multi-turn records (history,
ShareGPT, OpenAI messages) are answered at their last user turn:

    python scripts/generate.py --dataset sample_sft_dev --template belle --model_name_or_path trained_models/x

The output is JSON lines `{"input", "predict", "target"}` in the dev file's order, by default
`predictions.jsonl` in the adapter folder (or the model folder), and beside it `predictions.settings.json`:
model, adapter, template, system prompt, decoding settings, the dev data with its SHA-256, seed and package
versions (the evaluation report shows them). Settings and defaults: `--help`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a file: find `common`

from common.config import ConfigError, config_field, parse_config  # noqa: E402
from common.data import DataError  # noqa: E402
from common.runs import RunError, run_as_script, setup_logging  # noqa: E402
from common.settings import (  # noqa: E402
    PrecisionSettings,
    RemoteCodeSettings,
    SamplingSettings,
    check_template_and_max_samples,
)

logger = logging.getLogger("generate")


@dataclasses.dataclass
class GenerateConfig(SamplingSettings, RemoteCodeSettings, PrecisionSettings):
    # Inputs
    dev_file: str = config_field(
        "data_dir/Belle_open_source_0.5M.dev.json",
        "JSON lines or array of {instruction, input, output}; `output`, when present, is the target",
    )
    model_name_or_path: str = config_field(
        "trained_models/tiny-llama", "fine-tuned model folder, or the base model when --lora_weights is set"
    )
    lora_weights: str | None = config_field(None, "LoRA adapter folder to put on top of the base model")
    llama: bool = config_field(
        False,
        "accepted for BELLE compatibility; changes nothing (the weights' config picks the architecture)",
    )
    max_samples: int | None = config_field(None, "generate for the first N dev examples only (null: all)")
    skip_bad_records: bool = config_field(
        False, "skip malformed dev records (counted and logged) instead of stopping with a list of them"
    )
    dataset: str | None = config_field(
        None, "registered dev dataset name in dataset_dir (wins over dev_file)"
    )
    dataset_dir: str = config_field("data_dir", "folder holding dataset_info.json")
    template: str = config_field(
        "belle", "prompt format the model was trained with (see finetune --template)"
    )
    system: str | None = config_field(None, "system prompt (null: the template's default)")
    # Output
    output_file: str | None = config_field(
        None, "JSON lines to write (null: predictions.jsonl in the adapter folder, else the model folder)"
    )
    overwrite: bool = config_field(False, "allow replacing an existing output_file")
    # Decoding
    batch_size: int = config_field(
        64, "answers decoded together (beam: prompts per generate() call); lower it if memory runs out"
    )
    decoding: str = config_field("greedy", "greedy, sample or beam")
    top_p: float = config_field(0.9, "nucleus sampling probability mass (decoding=sample)")
    top_k: int = config_field(40, "sample only from the k most likely tokens (decoding=sample; 0: off)")
    num_beams: int = config_field(4, "beams (decoding=beam)")
    repetition_penalty: float = config_field(1.0, "penalty > 1 discourages repeating tokens (1.0: off)")
    seed: int = config_field(42, "seed for sampling")

    def check(self) -> None:
        if self.decoding not in ("greedy", "sample", "beam"):
            raise ConfigError(f"decoding must be greedy, sample or beam, got {self.decoding!r}")
        for name in ("batch_size", "num_beams"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        check_template_and_max_samples(self.template, self.max_samples)


def default_output_file(config: GenerateConfig) -> Path:
    folder = Path(config.lora_weights or config.model_name_or_path)
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a local folder, so there is no default place for predictions; "
                          "pass --output_file")  # fmt: skip
    return folder / "predictions.jsonl"


def read_dev_records(
    path: str, max_samples: int | None, skip_bad_records: bool = False
) -> list[dict[str, Any]]:
    """Dev records with a non-empty `instruction`; a missing `output` becomes an empty target. Bad records
    stop the run (listed) or, with skip_bad_records, are skipped and counted."""
    from common.data import read_records, report_problems

    problems: list[str] = []
    records = []
    for record in read_records(path, problems)[:max_samples]:
        if not isinstance(record.get("instruction"), str) or not record["instruction"].strip():
            problems.append(f"{record['_where']}: 'instruction' must be a non-empty string")
        elif not isinstance(record.get("input", ""), str | type(None)):
            problems.append(f"{record['_where']}: 'input' must be a string")
        else:
            records.append(record)
    report_problems(problems, skip_bad_records, path)
    return records


def dev_conversations(config: GenerateConfig) -> list[dict[str, Any]]:
    """Dev examples as {"system", "tools", "messages" (ending on the user turn to answer), "target"}.

    An alpaca/BELLE file may lack `output` (empty target); registered datasets and ShareGPT / OpenAI
    files go through the same normaliser as training, and their last answer is the target (a preference
    pair's chosen answer, a KTO record's completion). No record at all is an error before any model loads.
    """
    from common.data import DatasetSpec, _alpaca_messages, load_normalised, resolve_specs, spec_from_path

    spec = resolve_specs(config.dataset, None, config.dataset_dir)[0] if config.dataset else None
    if spec is None and Path(config.dev_file).is_file():
        detected = spec_from_path(config.dev_file)
        spec = detected if (detected.formatting, detected.kind) != ("alpaca", "sft") else None
    source = config.dataset or config.dev_file
    if spec is not None:
        examples = []
        for record in load_normalised(spec, config.dataset_dir, config.skip_bad_records, config.max_samples):
            if "messages" not in record:
                raise DataError(f"dataset {source!r} is pre-training text: there is no prompt to answer")
            prompt, target = record["messages"], record.get("chosen", record.get("completion"))
            if target is None:
                *prompt, answer = record["messages"]
                target = answer["content"]
            examples.append({"system": record["system"], "tools": record.get("tools"), "messages": prompt,
                             "target": target})  # fmt: skip
    else:
        plain = DatasetSpec(name="dev")
        examples = [{"system": record.get("system"), "tools": None,
                     "messages": _alpaca_messages(record, plain, None), "target": record.get("output") or ""}
                    for record in read_dev_records(config.dev_file, config.max_samples, config.skip_bad_records)]  # fmt: skip
    if not examples:
        raise DataError(f"{source}: no dev records, nothing to generate")
    return examples


def dev_files(config: GenerateConfig) -> dict[str, str]:
    """SHA-256 of every file the dev examples came from."""
    from common.data import resolve_specs, spec_files
    from common.runs import sha256_of

    specs = resolve_specs(config.dataset, config.dev_file, config.dataset_dir)
    return {path: sha256_of(path) for path in spec_files(specs, config.dataset_dir)}


def write_settings(
    config: GenerateConfig,
    argv: list[str] | None,
    output_file: Path,
    settings: Any,
    count: int,
    precision: str,
) -> Path:
    """<output>.settings.json: what produced these predictions, for the report and for repeating the run."""
    from common.report import settings_file_for
    from common.runs import package_versions, write_json_atomic

    decoding = {"decoding": config.decoding, "max_new_tokens": config.max_new_tokens,
                "repetition_penalty": config.repetition_penalty, "batch_size": config.batch_size,
                "stop_token_ids": list(settings.eos_token_id)}  # fmt: skip
    if config.decoding == "sample":
        decoding |= {"temperature": config.temperature, "top_p": config.top_p, "top_k": config.top_k}
    if config.decoding == "beam":
        decoding["num_beams"] = config.num_beams
    record = {
        "model_name_or_path": config.model_name_or_path,
        "lora_weights": config.lora_weights,
        "template": config.template,
        "system": config.system,
        "decoding": decoding,
        "precision": precision,
        "dev_data": {
            "dataset": config.dataset,
            "dev_file": None if config.dataset else config.dev_file,
            "dataset_dir": config.dataset_dir if config.dataset else None,
            "files_sha256": dev_files(config),
            "max_samples": config.max_samples,
            "skip_bad_records": config.skip_bad_records,
            "examples": count,
        },
        "seed": config.seed,
        "arguments": sys.argv[1:] if argv is None else list(argv),
        "versions": {"python": sys.version.split()[0], **package_versions()},
    }
    path = settings_file_for(output_file)
    write_json_atomic(path, record)
    return path


def prompt_text(template: Any, tokenizer: Any, example: dict[str, Any], system: str | None) -> str:
    """The prompt as text, for the output's `input` field (no bos)."""
    from common.templates import BOS, EOS, render_pieces

    system = system if system is not None else example["system"]
    tools = {"tools": example["tools"]} if example.get("tools") else {}  # tool-aware templates only
    if template == "tokenizer":
        full = ([{"role": "system", "content": system}] if system else []) + example["messages"]
        return tokenizer.apply_chat_template(full, tokenize=False, add_generation_prompt=True, **tools)
    text = "".join(t for t, _ in render_pieces(template, example["messages"], system, **tools))
    return text.replace(BOS, "").replace(EOS, "")


def generation_settings(config: GenerateConfig, eos_ids: list[int], pad_id: int) -> Any:
    """A GenerationConfig holding only what the chosen decoding uses (no 'unused flag' warnings)."""
    from transformers import GenerationConfig

    settings: dict[str, Any] = {
        "max_new_tokens": config.max_new_tokens,
        "repetition_penalty": config.repetition_penalty,
        "eos_token_id": eos_ids,
        "pad_token_id": pad_id,
        "do_sample": config.decoding == "sample",
        "num_beams": config.num_beams if config.decoding == "beam" else 1,
    }
    if config.decoding == "sample":
        settings |= {"temperature": config.temperature, "top_p": config.top_p, "top_k": config.top_k}
    else:  # the model's saved generation_config may carry sampling values; greedy/beam must not see them
        settings |= {"temperature": None, "top_p": None, "top_k": None}
    return GenerationConfig(**settings)


def generate_batch(model: Any, tokenizer: Any, prompt_ids: list[list[int]], settings: Any) -> list[list[int]]:
    """New token ids for each prompt, one left-padded generate() call; eos and padding removed."""
    import torch

    batch = tokenizer.pad({"input_ids": prompt_ids}, padding=True, return_tensors="pt")
    assert tokenizer.padding_side == "left", "batched generation needs left padding"
    with torch.inference_mode():
        output = model.generate(
            input_ids=batch["input_ids"].to(model.device),
            attention_mask=batch["attention_mask"].to(model.device),
            generation_config=settings,
        )
    stop = set(settings.eos_token_id)  # after the first eos, generate() only fills in padding
    new_ids = []
    for row in output[:, batch["input_ids"].shape[1] :].tolist():
        end = next((i for i, token in enumerate(row) if token in stop), len(row))
        new_ids.append(row[:end])
    return new_ids


def generate_answers(
    config: GenerateConfig, model: Any, tokenizer: Any, template: Any, eos_ids: list[int],
    prompt_ids: list[list[int]], settings: Any,
) -> list[list[int]]:  # fmt: skip
    """Each prompt's answer ids (up to its first stop token, which is left out), in the prompts' order."""
    if config.decoding == "beam":  # beams need generate(): static left-padded batches
        from tqdm import tqdm

        answers = []
        for start in tqdm(range(0, len(prompt_ids), config.batch_size), desc="generating"):
            answers += generate_batch(
                model, tokenizer, prompt_ids[start : start + config.batch_size], settings
            )
        return answers
    from common.generation import HFEngine, SamplingParams

    engine = HFEngine(model, tokenizer, template, eos_ids, max_batch_size=config.batch_size)
    sample = config.decoding == "sample"  # each prompt gets its own seed: the same answer whatever the batch
    params = [SamplingParams(max_tokens=config.max_new_tokens, temperature=config.temperature if sample else 0.0,
                             top_p=config.top_p if sample else 1.0, top_k=config.top_k if sample else 0,
                             repetition_penalty=config.repetition_penalty, seed=config.seed + i if sample else None)
              for i in range(len(prompt_ids))]  # fmt: skip
    completions = engine.generate(prompt_ids, params, progress=True)
    return [c.token_ids[:-1] if c.finish_reason == "stop" else c.token_ids for c in completions]


def main(argv: list[str] | None = None) -> Path:
    setup_logging()
    # ---- Config -------------------------------------------------------------------------------
    config = parse_config(GenerateConfig, argv, description=__doc__)
    output_file = Path(config.output_file) if config.output_file else default_output_file(config)
    if output_file.exists() and not config.overwrite:
        raise RunError(f"{output_file} already exists. Nothing was changed. Pass --overwrite to replace it, "
                       "or choose another --output_file.")  # fmt: skip
    if config.llama:
        logger.info("--llama changes nothing: the model's config.json decides the architecture")

    # ---- Data ---------------------------------------------------------------------------------
    records = dev_conversations(config)
    logger.info("%d dev examples from %s", len(records), config.dataset or config.dev_file)

    # ---- Model --------------------------------------------------------------------------------
    import torch
    from transformers import set_seed

    from common.modeling import (
        adapter_tokenizer_path,
        load_causal_lm,
        load_causal_lm_with_adapter,
        load_tokenizer,
        pick_precision,
        torch_dtype,
    )

    set_seed(config.seed)
    precision = pick_precision(config.precision)
    tokenizer_path = config.model_name_or_path
    if config.lora_weights:
        tokenizer_path = adapter_tokenizer_path(config.lora_weights, config.model_name_or_path)
        model = load_causal_lm_with_adapter(
            config.model_name_or_path, config.lora_weights, torch_dtype(precision), config.trust_remote_code
        )
    else:
        model = load_causal_lm(config.model_name_or_path, torch_dtype(precision),
                               trust_remote_code=config.trust_remote_code)  # fmt: skip
    tokenizer = load_tokenizer(
        tokenizer_path, padding_side="left", trust_remote_code=config.trust_remote_code
    )
    model.to("cuda" if torch.cuda.is_available() else "cpu").eval()
    model_eos = model.generation_config.eos_token_id
    model_eos = [] if model_eos is None else [model_eos] if isinstance(model_eos, int) else list(model_eos)
    from common.templates import encode_generation_prompt, get_template, stop_token_ids

    template = get_template(config.template)
    # Training ends every answer with the tokenizer's eos or the template's end marker (<|im_end|>, ...).
    eos_ids = sorted({*stop_token_ids(template, tokenizer), *model_eos})
    settings = generation_settings(config, eos_ids, tokenizer.pad_token_id)
    logger.info("model %s%s, %s, decoding %s, tokenizer from %s", config.model_name_or_path,
                f" + adapter {config.lora_weights}" if config.lora_weights else "", precision,
                config.decoding, tokenizer_path)  # fmt: skip

    # ---- Generate -----------------------------------------------------------------------------
    # Written to a .partial file first, so an interrupted run leaves no file that looks complete.
    output_file.parent.mkdir(parents=True, exist_ok=True)
    partial = output_file.with_name(output_file.name + ".partial")
    prompt_ids = [
        encode_generation_prompt(
            template,
            tokenizer,
            r["messages"],
            config.system or r["system"],
            **({"tools": r["tools"]} if r.get("tools") else {}),
        )
        for r in records
    ]
    started = time.perf_counter()
    try:
        answers = generate_answers(config, model, tokenizer, template, eos_ids, prompt_ids, settings)
    except torch.OutOfMemoryError:
        raise RunError(f"out of GPU memory with --batch_size {config.batch_size}; lower it") from None
    seconds = time.perf_counter() - started
    logger.info("generated %d tokens in %.1f s (%.0f tokens/s)", sum(map(len, answers)), seconds,
                sum(map(len, answers)) / max(seconds, 1e-9))  # fmt: skip
    with open(partial, "w", encoding="utf-8") as out:
        for record, ids in zip(records, answers, strict=True):
            prediction = {
                "input": prompt_text(template, tokenizer, record, config.system or record["system"]),
                "predict": tokenizer.decode(ids, skip_special_tokens=True).strip(),
                "target": record["target"],
            }
            out.write(json.dumps(prediction, ensure_ascii=False) + "\n")
    os.replace(partial, output_file)
    settings_file = write_settings(config, argv, output_file, settings, len(records), precision)
    logger.info("wrote %d predictions to %s (settings: %s)", len(records), output_file, settings_file.name)
    return output_file


if __name__ == "__main__":
    from common.generation import GenerationError  # a prompt longer than the model's context

    run_as_script(main, GenerationError)
