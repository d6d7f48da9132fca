"""Reading data in every supported format, normalising it to one conversation shape, and tokenising it.

Rendering a conversation into ids and labels (chat templates, label masks, truncation) lives in
common/templates.py; this module reads files and the dataset registry, reports bad records by file and
line, and caches tokenised data.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import re
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100  # label value that the loss skips (torch.nn.CrossEntropyLoss's ignore_index)


class DataError(ValueError):
    """Bad input data; the message names the file and line, and scripts print it without a traceback."""


def read_json_records(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSON array or JSON lines file of objects; errors name the file and line (or index)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: accept a UTF-8 byte-order mark
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not valid UTF-8 ({err.reason})") from None
    if not text.strip():
        raise DataError(f"{path}: the file is empty")

    if text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{err.lineno}: invalid JSON: {err.msg}") from None
        where = [f"{path}: item {i}" for i in range(len(records))]
    else:
        records, where = [], []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise DataError(
                    f"{path}:{number}: invalid JSON line: {err.msg} (column {err.colno})"
                ) from None
            where.append(f"{path}:{number}")
    for record, location in zip(records, where, strict=True):
        if not isinstance(record, dict):
            raise DataError(f"{location}: expected a JSON object, got {type(record).__name__}")
        record["_where"] = location
    return records


def check_instruction_records(records: list[dict[str, Any]]) -> None:
    """Every record needs a non-empty string `instruction` and `output`; `input` is optional."""
    for record in records:
        for key in ("instruction", "output"):
            value = record.get(key)
            if not isinstance(value, str) or not value.strip():
                problem = "is missing" if key not in record else f"must be a non-empty string, got {value!r}"
                raise DataError(f"{record['_where']}: '{key}' {problem}")
        if not isinstance(record.get("input", ""), str | type(None)):
            raise DataError(f"{record['_where']}: 'input' must be a string")


def split_train_dev(records: list[Any], dev_size: int, seed: int) -> tuple[list[Any], list[Any]]:
    """A seeded random split: the same records, seed and size always give the same two lists."""
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    dev_index = set(order[:dev_size])
    train = [r for i, r in enumerate(records) if i not in dev_index]
    dev = [r for i, r in enumerate(records) if i in dev_index]
    return train, dev


def write_json_lines(records: list[dict[str, Any]], path: str | Path) -> None:
    """JSON lines with readable Chinese (ensure_ascii=False); internal keys like `_where` are dropped."""
    with open(path, "w", encoding="utf-8") as out:
        for record in records:
            clean = {k: v for k, v in record.items() if not k.startswith("_")}
            out.write(json.dumps(clean, ensure_ascii=False) + "\n")


# ==== Dataset formats, the registry and bad-record reporting ======================================
# Every supported format is normalised to one shape before templating:
#   SFT:        {"system": str | None, "messages": [{"role": "user"|"assistant", "content": str}, ...]}
#   preference: the same, with the prompt conversation ending on a user turn, plus "chosen" / "rejected"
#   pre-train:  {"text": str}
# plus "_where" (file:line or file: item i, for error messages) and "_source" (the dataset name).

MAX_LISTED_PROBLEMS = 10
ALPACA_COLUMNS = {"prompt": "instruction", "query": "input", "response": "output", "history": "history",
                  "system": "system", "chosen": "chosen", "rejected": "rejected"}  # fmt: skip
SHAREGPT_COLUMNS = {
    "messages": "conversations",
    "system": "system",
    "chosen": "chosen",
    "rejected": "rejected",
}
SHAREGPT_TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
                 "system_tag": "system"}  # fmt: skip
OPENAI_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
               "system_tag": "system"}  # fmt: skip
_BELLE_TURN = re.compile(r"(?:^|\n)\s*(Human|Assistant)\s*[:：]")


class RecordError(ValueError):
    """One bad record; the loader adds where it is and decides whether to stop or skip."""


@dataclasses.dataclass
class DatasetSpec:
    """One entry of dataset_info.json (LLaMA-Factory's keys), or a file given with --data_path."""

    name: str
    file_name: str | None = None
    hf_hub_url: str | None = None
    subset: str | None = None
    split: str = "train"
    formatting: str = "alpaca"  # alpaca | sharegpt | text
    ranking: bool = False
    columns: dict[str, str] = dataclasses.field(default_factory=dict)
    tags: dict[str, str] = dataclasses.field(default_factory=dict)

    def column(self, key: str) -> str | None:
        defaults = SHAREGPT_COLUMNS if self.formatting == "sharegpt" else ALPACA_COLUMNS
        if self.formatting == "text":
            defaults = {"text": "text"}
        return self.columns.get(key, defaults.get(key))

    def tag(self, key: str) -> str:
        return self.tags.get(key, SHAREGPT_TAGS[key])


# ---- reading files, collecting problems -----------------------------------------------------------


def read_records(path: str | Path, problems: list[str] | None = None) -> list[dict[str, Any]]:
    """Records of a .json / .jsonl file (array or lines) or a .txt file (one {"text"} per non-empty line).

    With `problems` given, a broken JSON line is noted there and skipped instead of stopping the read.
    """
    path = Path(path)
    if path.suffix != ".txt":
        if problems is None or not path.is_file():
            return read_json_records(path)
        try:
            return read_json_records(path)
        except DataError as err:
            if "invalid JSON line" not in str(err):
                raise
        return _read_json_lines_lenient(path, problems)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not valid UTF-8 ({err.reason})") from None
    records = [
        {"text": line, "_where": f"{path}:{n}"} for n, line in enumerate(text.splitlines(), 1) if line.strip()
    ]
    if not records:
        raise DataError(f"{path}: the file is empty")
    return records


def _read_json_lines_lenient(path: Path, problems: list[str]) -> list[dict[str, Any]]:
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            problems.append(f"{path}:{number}: invalid JSON line: {err.msg} (column {err.colno})")
            continue
        if not isinstance(record, dict):
            problems.append(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
            continue
        record["_where"] = f"{path}:{number}"
        records.append(record)
    return records


def report_problems(problems: list[str], skip: bool, what: str) -> None:
    """Stop with the first problems listed, or (skip) log how many records were skipped and why."""
    if not problems:
        return
    if not skip:
        listed = "\n  ".join(problems[:MAX_LISTED_PROBLEMS])
        more = (
            f"\n  ... and {len(problems) - MAX_LISTED_PROBLEMS} more"
            if len(problems) > MAX_LISTED_PROBLEMS
            else ""
        )
        raise DataError(f"{what}: {len(problems)} bad record(s); pass --skip_bad_records to skip them:\n  "
                        f"{listed}{more}")  # fmt: skip
    reasons: dict[str, int] = {}
    for problem in problems:
        reason = re.sub(r"^.*?: ", "", problem, count=1)
        reason = re.sub(r"\d+", "N", reason)  # group "turn 3 ..." and "turn 5 ..." together
        reasons[reason] = reasons.get(reason, 0) + 1
    summary = "; ".join(f"{n} × {reason}" for reason, n in sorted(reasons.items(), key=lambda x: -x[1]))
    logger.warning("%s: skipped %d bad record(s): %s (first: %s)", what, len(problems), summary, problems[0])


# ---- normalising one record --------------------------------------------------------------------


def _text(
    record: dict[str, Any], column: str | None, required: bool, allow_empty: bool = False
) -> str | None:
    if column is None:
        return None
    if column not in record:
        if required:
            raise RecordError(f"'{column}' is missing")
        return None
    value = record[column]
    if value is None:
        if required:
            raise RecordError(f"'{column}' is null")
        return None
    if not isinstance(value, str):
        raise RecordError(f"'{column}' must be a string, got {type(value).__name__}")
    if required and not allow_empty and not value.strip():
        raise RecordError(f"'{column}' is empty")
    return value


def split_belle_dialogue(text: str) -> list[dict[str, str]] | None:
    """BELLE multi-turn (0.8M) packs the dialogue into one string: `Human:q\\nAssistant:a\\nHuman:q2\\n
    Assistant:`. Its turns, or None when the text is not such a dialogue."""
    if not text.lstrip().startswith("Human") or len(_BELLE_TURN.findall(text)) < 2:
        return None
    parts = _BELLE_TURN.split(text)  # ["", "Human", " q", "Assistant", " a", ...]
    turns = []
    for speaker, content in zip(parts[1::2], parts[2::2], strict=True):
        turns.append({"role": "user" if speaker == "Human" else "assistant", "content": content.strip()})
    return turns


def _alpaca_messages(record: dict[str, Any], spec: DatasetSpec, response: str | None) -> list[dict[str, str]]:
    prompt = _text(record, spec.column("prompt"), required=True)
    query = _text(record, spec.column("query"), required=False)
    messages: list[dict[str, str]] = []
    history = record.get(spec.column("history") or "")
    if history:
        if not isinstance(history, list) or not all(
            isinstance(pair, list | tuple) and len(pair) == 2 and all(isinstance(x, str) for x in pair)
            for pair in history
        ):
            raise RecordError(f"'{spec.column('history')}' must be a list of [question, answer] string pairs")
        for question, answer in history:
            messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    dialogue = split_belle_dialogue(prompt) if not query else None
    if dialogue and dialogue[-1] == {"role": "assistant", "content": ""}:
        messages += dialogue[:-1]  # BELLE multi-turn: the answer to the last question is the output
    else:
        messages.append({"role": "user", "content": f"{prompt}\n{query}" if query else prompt})
    if response is not None:
        messages.append({"role": "assistant", "content": response})
    return messages


def _sharegpt_messages(record: dict[str, Any], spec: DatasetSpec) -> tuple[str | None, list[dict[str, str]]]:
    column = spec.column("messages")
    turns = record.get(column)
    if column not in record:
        raise RecordError(f"'{column}' is missing")
    if not isinstance(turns, list) or not turns:
        raise RecordError(f"'{column}' must be a non-empty list of turns")
    roles = {
        spec.tag("user_tag"): "user",
        spec.tag("assistant_tag"): "assistant",
        spec.tag("system_tag"): "system",
    }
    system, messages = None, []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise RecordError(f"turn {i} is not an object")
        role = roles.get(turn.get(spec.tag("role_tag")))
        content = turn.get(spec.tag("content_tag"))
        if role is None:
            raise RecordError(f"turn {i}: unknown role {turn.get(spec.tag('role_tag'))!r} "
                              f"(expected one of {', '.join(roles)})")  # fmt: skip
        if not isinstance(content, str):
            raise RecordError(f"turn {i}: '{spec.tag('content_tag')}' must be a string")
        if role == "system" and i == 0:
            system = content
        else:
            messages.append({"role": role, "content": content})
    return system, messages


def check_conversation(messages: list[dict[str, str]], answer_last: bool = True) -> None:
    for i, message in enumerate(messages):
        expected = "user" if i % 2 == 0 else "assistant"
        if message["role"] != expected:
            raise RecordError(f"turn {i} is {message['role']!r} where {expected!r} was expected "
                              "(roles must alternate, starting with the user)")  # fmt: skip
        if expected == "assistant" and not message["content"].strip():
            raise RecordError(f"turn {i}: empty response")
    if not messages:
        raise RecordError("no turns")
    if answer_last and messages[-1]["role"] != "assistant":
        raise RecordError("the conversation ends with a user turn: no answer to train on")
    if not answer_last and messages[-1]["role"] != "user":
        raise RecordError("the prompt conversation must end with a user turn")


def _split_hh_rlhf(chosen: str, rejected: str) -> tuple[list[dict[str, str]], str, str]:
    """Anthropic HH-RLHF rows hold whole dialogues `\\n\\nHuman: q\\n\\nAssistant: a...`; the shared
    part up to the last `\\n\\nAssistant:` is the prompt, the rest the two answers."""
    marker = "\n\nAssistant:"
    cut = chosen.rfind(marker)
    if cut < 0 or not rejected.startswith(chosen[: cut + len(marker)]):
        raise RecordError(
            "chosen and rejected do not share a `Human: ... Assistant:` prompt (HH-RLHF format)"
        )
    prompt = chosen[:cut]
    turns = re.split(r"\n\n(Human|Assistant):", prompt)
    messages = [{"role": "user" if s == "Human" else "assistant", "content": c.strip()}
                for s, c in zip(turns[1::2], turns[2::2], strict=True)]  # fmt: skip
    start = cut + len(marker)
    return messages, chosen[start:].strip(), rejected[start:].strip()


def normalise_record(record: dict[str, Any], spec: DatasetSpec) -> dict[str, Any]:
    """One raw record in the spec's format → the normalised shape above; RecordError says what is wrong."""
    if spec.formatting == "text":
        return {"text": _text(record, spec.column("text"), required=True)}
    system = None
    if spec.ranking:
        chosen_col, rejected_col = spec.column("chosen"), spec.column("rejected")
        response_col = spec.column("response")
        if spec.formatting == "alpaca" and isinstance(record.get(response_col), list):
            pair = record[response_col]  # alpaca ranking: output: [chosen, rejected]
            if len(pair) != 2 or not all(isinstance(x, str) for x in pair):
                raise RecordError(f"'{response_col}' must be [chosen, rejected] strings")
            chosen, rejected = pair
        else:
            chosen, rejected = (_answer(record, c, spec) for c in (chosen_col, rejected_col))
        if (
            spec.formatting == "alpaca"
            and record.get(spec.column("prompt")) is None
            and chosen.lstrip().startswith("Human:")
        ):
            messages, chosen, rejected = _split_hh_rlhf("\n\n" + chosen.lstrip(), "\n\n" + rejected.lstrip())
        elif spec.formatting == "sharegpt":
            system, messages = _sharegpt_messages(record, spec)
        else:
            messages = _alpaca_messages(record, spec, None)
        for name, value in (("chosen", chosen), ("rejected", rejected)):
            if not value.strip():
                raise RecordError(f"empty response ('{name}')")
        check_conversation(messages, answer_last=False)
        system = _text(record, spec.column("system"), required=False) or system
        return {"system": system, "messages": messages, "chosen": chosen, "rejected": rejected}
    if spec.formatting == "sharegpt":
        system, messages = _sharegpt_messages(record, spec)
    else:
        response = _text(record, spec.column("response"), required=True, allow_empty=True)
        messages = _alpaca_messages(record, spec, response)
    check_conversation(messages)
    system = _text(record, spec.column("system"), required=False) or system
    return {"system": system, "messages": messages}


def _answer(record: dict[str, Any], column: str, spec: DatasetSpec) -> str:
    value = record.get(column)
    if isinstance(value, dict):  # sharegpt ranking: the answer is a message object
        value = value.get(spec.tag("content_tag"))
    if column not in record:
        raise RecordError(f"'{column}' is missing")
    if not isinstance(value, str):
        raise RecordError(f"'{column}' is null" if value is None else f"'{column}' must be a string")
    return value


# ---- the registry ----------------------------------------------------------------------------------


def load_dataset_info(dataset_dir: str | Path) -> dict[str, DatasetSpec]:
    """dataset_info.json in `dataset_dir` (LLaMA-Factory's format) as specs by name."""
    path = Path(dataset_dir) / "dataset_info.json"
    if not path.is_file():
        raise DataError(f"no dataset registry at {path} (needed for --dataset)")
    try:
        entries = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}:{err.lineno}: invalid JSON: {err.msg}") from None
    known = {f.name for f in dataclasses.fields(DatasetSpec)} - {"name"}
    specs = {}
    for name, entry in entries.items():
        if name.startswith("_"):
            continue
        unknown = set(entry) - known
        if unknown:
            raise DataError(
                f"{path}: dataset {name!r}: unknown key(s) {sorted(unknown)}; valid: {sorted(known)}"
            )
        if not entry.get("file_name") and not entry.get("hf_hub_url"):
            raise DataError(f"{path}: dataset {name!r} needs file_name or hf_hub_url")
        if entry.get("formatting", "alpaca") not in ("alpaca", "sharegpt", "text"):
            raise DataError(f"{path}: dataset {name!r}: formatting must be alpaca, sharegpt or text")
        specs[name] = DatasetSpec(name=name, **entry)
    return specs


def spec_from_path(data_path: str | Path) -> DatasetSpec:
    """A spec for a file given directly: .txt is pre-training text; JSON is recognised by its keys."""
    path = Path(data_path)
    spec = DatasetSpec(name=path.name, file_name=str(path))
    if path.suffix == ".txt":
        spec.formatting = "text"
        return spec
    try:
        first = read_json_records(path)[0]
    except (DataError, IndexError):
        return spec  # the real read reports the problem with its line
    if "conversations" in first or "messages" in first:
        spec.formatting = "sharegpt"
        if "messages" in first:
            spec.columns = {"messages": "messages"}
            spec.tags = dict(OPENAI_TAGS)
    elif "text" in first and "instruction" not in first:
        spec.formatting = "text"
    spec.ranking = "chosen" in first and "rejected" in first
    if spec.formatting == "alpaca" and isinstance(first.get("output"), list):
        spec.ranking = True
    return spec


def _raw_records(
    spec: DatasetSpec, dataset_dir: str | Path, problems: list[str] | None
) -> list[dict[str, Any]]:
    if spec.file_name:
        path = Path(spec.file_name)
        if not path.is_absolute() and not path.exists():
            path = Path(dataset_dir) / spec.file_name
        if path.is_dir():  # a folder: every data file in it, in name order (the pre-training corpus)
            files = sorted(p for p in path.iterdir() if p.suffix in (".txt", ".json", ".jsonl"))
            if not files:
                raise DataError(f"dataset {spec.name!r}: no .txt/.json/.jsonl file in {path}")
            return [r for f in files for r in read_records(f, problems)]
        return read_records(path, problems)
    try:
        import datasets

        hub = datasets.load_dataset(spec.hf_hub_url, spec.subset, split=spec.split)
    except Exception as err:  # noqa: BLE001 - any hub/network failure becomes one clear message
        raise DataError(f"dataset {spec.name!r}: cannot load {spec.hf_hub_url!r} from the Hugging Face hub "
                        f"(offline? set HF_ENDPOINT, or download it and register file_name): "
                        f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") from None  # fmt: skip
    return [dict(row, _where=f"{spec.hf_hub_url}[{i}]") for i, row in enumerate(hub)]


def load_normalised(
    spec: DatasetSpec,
    dataset_dir: str | Path = "data_dir",
    skip_bad_records: bool = False,
    max_samples: int | None = None,
) -> list[dict[str, Any]]:
    """Normalised records of one dataset; bad ones stop the run (listed) or are skipped (counted)."""
    problems: list[str] = []
    raw = _raw_records(spec, dataset_dir, problems)
    if max_samples is not None:
        raw = raw[:max_samples]
    records = []
    for record in raw:
        try:
            normal = normalise_record(record, spec)
        except RecordError as err:
            problems.append(f"{record['_where']}: {err}")
            continue
        records.append(normal | {"_where": record["_where"], "_source": spec.name})
    report_problems(problems, skip_bad_records, spec.file_name or spec.hf_hub_url or spec.name)
    if not records:
        raise DataError(f"dataset {spec.name!r}: no usable record")
    return records


def resolve_specs(dataset: str | None, data_path: str | None, dataset_dir: str | Path) -> list[DatasetSpec]:
    """--dataset a,b (names in dataset_info.json) wins over --data_path (one file)."""
    if dataset:
        registry = load_dataset_info(dataset_dir)
        specs = []
        for name in (n.strip() for n in dataset.split(",") if n.strip()):
            if name not in registry:
                raise DataError(f"dataset {name!r} is not in {Path(dataset_dir) / 'dataset_info.json'}; "
                                f"registered: {', '.join(registry)}")  # fmt: skip
            specs.append(registry[name])
        return specs
    if not data_path:
        raise DataError("no data: pass --dataset (registered names) or --data_path (a file)")
    return [spec_from_path(data_path)]


def load_mixed(
    specs: list[DatasetSpec],
    dataset_dir: str | Path = "data_dir",
    skip_bad_records: bool = False,
    max_samples: int | None = None,
    seed: int = 42,
) -> list[dict[str, Any]]:
    """Several datasets, `max_samples` from each, shuffled together with `seed` (one dataset keeps its
    file order, so a single --data_path run is what it always was)."""
    records = []
    for spec in specs:
        part = load_normalised(spec, dataset_dir, skip_bad_records, max_samples)
        logger.info("dataset %s: %d records", spec.name, len(part))
        records += part
    if len(specs) > 1:
        random.Random(seed).shuffle(records)
    return records


def load_preference_records(
    source: str | Path | DatasetSpec,
    dataset_dir: str | Path = "data_dir",
    skip_bad_records: bool = False,
    max_samples: int | None = None,
) -> list[dict[str, Any]]:
    """Preference pairs as {"system", "messages" (prompt, ends on a user turn), "chosen", "rejected"}.

    `source`: a registered name, a file (chosen/rejected columns, alpaca `output: [chosen, rejected]`,
    raw HH-RLHF strings, sharegpt ranking) or a DatasetSpec.
    """
    if isinstance(source, DatasetSpec):
        spec = source
    elif Path(source).exists():
        spec = spec_from_path(source)
    else:
        spec = resolve_specs(str(source), None, dataset_dir)[0]
    if not spec.ranking:
        raise DataError(
            f"dataset {spec.name!r} is not a preference dataset (no chosen/rejected; set ranking)"
        )
    return load_normalised(spec, dataset_dir, skip_bad_records, max_samples)


def tokenise_preferences(
    records: list[dict[str, Any]], tokenizer: Any, template_name: str, cutoff_len: int
) -> Any:
    """A datasets.Dataset of prompt_ids / chosen_ids / rejected_ids (TRL's processed preference columns),
    one row per pair that keeps an answer token after the cut; the others are counted and dropped."""
    from datasets import Dataset

    from common.templates import TemplateError, encode_preference_pair, get_template

    template = get_template(template_name)
    rows, dropped = [], 0
    for record in records:
        try:
            pair = encode_preference_pair(template, tokenizer, record["messages"], record["chosen"],
                                          record["rejected"], record.get("system"), cutoff_len)  # fmt: skip
        except TemplateError as err:
            raise DataError(f"{record.get('_where', '?')}: template {template_name!r}: {err}") from None
        if pair is None:
            dropped += 1
            continue
        rows.append(pair)
    if dropped:
        logger.warning("dropped %d pairs with no answer token left after cutting to cutoff_len=%d",
                       dropped, cutoff_len)  # fmt: skip
    if not rows:
        raise DataError(f"no preference pair left after cutting to cutoff_len={cutoff_len}")
    return Dataset.from_list(rows)


# ---- tokenising with a template, cached on disk -----------------------------------------------------

CACHE_VERSION = 1  # bump when the rendering or truncation code changes what a cached dataset holds


def spec_files(specs: list[DatasetSpec], dataset_dir: str | Path) -> list[str]:
    """The local files behind the specs (folders expanded); a missing one is a clear error."""
    files = []
    for spec in specs:
        if not spec.file_name:
            continue
        path = Path(spec.file_name)
        if not path.is_absolute() and not path.exists():
            path = Path(dataset_dir) / spec.file_name
        if path.is_dir():
            files += [str(p) for p in sorted(path.iterdir()) if p.suffix in (".txt", ".json", ".jsonl")]
        elif path.is_file():
            files.append(str(path))
        else:
            raise DataError(f"data file not found: {path}")
    return files


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """sha256 of the tokenizer's files (tokenizer.json or the vocab files) plus its special tokens."""
    import hashlib

    digest = hashlib.sha256(repr(sorted(tokenizer.special_tokens_map.items())).encode())
    folder = Path(str(getattr(tokenizer, "name_or_path", "")))
    names = ("tokenizer.json", "tokenizer.model", "vocab.json", "merges.txt", "tokenizer_config.json")
    found = [folder / n for n in names if (folder / n).is_file()]
    for path in found:
        digest.update(path.read_bytes())
    if not found:  # not a local folder: the vocabulary itself
        digest.update(json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False).encode())
    digest.update(str(getattr(tokenizer, "chat_template", None)).encode())
    return digest.hexdigest()


def tokenised_cache_key(
    specs: list[DatasetSpec], dataset_dir: str | Path, tokenizer: Any, **settings: Any
) -> str:
    """Same data files (by content), specs, tokenizer, template and cutoff → same key."""
    import hashlib

    from common.runs import sha256_of

    content = {
        "version": CACHE_VERSION,
        "files": {f: sha256_of(f) for f in spec_files(specs, dataset_dir)},
        "specs": [dataclasses.asdict(s) for s in specs],
        "tokenizer": tokenizer_fingerprint(tokenizer),
        **settings,
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:24]


def tokenise_conversations(
    records: list[dict[str, Any]],
    tokenizer: Any,
    template_name: str,
    cutoff_len: int,
    train_on_inputs: bool = False,
    num_proc: int | None = None,
) -> Any:
    """A datasets.Dataset of input_ids / attention_mask / labels in record order, tokenised in batches
    (`num_proc` processes). A conversation with no answer token left after the cut gets empty lists,
    so row i is still record i; callers drop empty rows after splitting."""
    from datasets import Dataset, disable_progress_bar, enable_progress_bar

    from common.templates import encode_conversation, get_template

    template = get_template(template_name)
    rows = Dataset.from_dict(
        {"system": [r.get("system") for r in records], "messages": [r["messages"] for r in records]}
    )

    def encode(batch: dict[str, list]) -> dict[str, list]:
        out: dict[str, list] = {"input_ids": [], "attention_mask": [], "labels": []}
        for system, messages in zip(batch["system"], batch["messages"], strict=True):
            example = encode_conversation(template, tokenizer, messages, system, cutoff_len, train_on_inputs)
            for key in out:
                out[key].append(example[key] if example else [])
        return out

    if len(records) < 1000:
        disable_progress_bar()  # a bar for a few hundred rows is noise
    from common.templates import TemplateError

    try:
        return rows.map(
            encode,
            batched=True,
            batch_size=1000,
            num_proc=num_proc if num_proc and num_proc > 1 and len(records) >= 1000 else None,
            remove_columns=rows.column_names,
            desc="tokenising",
            load_from_cache_file=False,  # our own cache below is keyed by content; datasets' is not
        )
    except TemplateError as err:
        raise DataError(f"template {template_name!r}: {err}") from None
    finally:
        enable_progress_bar()


def load_tokenised(
    specs: list[DatasetSpec],
    tokenizer: Any,
    template_name: str,
    cutoff_len: int,
    *,
    dataset_dir: str | Path = "data_dir",
    train_on_inputs: bool = False,
    max_samples: int | None = None,
    seed: int = 42,
    skip_bad_records: bool = False,
    num_proc: int | None = None,
    cache_dir: str | Path | None = None,
) -> Any:
    """Load, normalise, template and tokenise `specs`, or load the result of an identical earlier run
    from `cache_dir` ("loaded cached tokenised data"). Rows keep record order; empty rows = dropped."""
    from datasets import load_from_disk

    settings = {"template": template_name, "cutoff_len": cutoff_len, "train_on_inputs": train_on_inputs,
                "max_samples": max_samples, "seed": seed, "skip_bad_records": skip_bad_records}  # fmt: skip
    cached = None
    if cache_dir:
        cached = Path(cache_dir) / tokenised_cache_key(specs, dataset_dir, tokenizer, **settings)
        if (cached / "complete").is_file():
            dataset = load_from_disk(str(cached))
            logger.info("loaded cached tokenised data from %s (%d rows)", cached, len(dataset))
            return dataset
    if template_name == "tokenizer" and not getattr(tokenizer, "chat_template", None):
        raise DataError("--template tokenizer: this tokenizer has no chat_template; choose a named template")
    records = load_mixed(specs, dataset_dir, skip_bad_records, max_samples, seed)
    if "messages" not in records[0]:
        raise DataError(f"dataset {records[0]['_source']!r} is pre-training text, not conversations; "
                        "fine-tuning needs instruction or chat data")  # fmt: skip
    if "chosen" in records[0]:
        raise DataError(f"dataset {records[0]['_source']!r} holds preference pairs; use the RM/DPO scripts")
    dataset = tokenise_conversations(records, tokenizer, template_name, cutoff_len, train_on_inputs, num_proc)
    if cached is not None:
        import os
        import tempfile

        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(dir=cached.parent, prefix=cached.name + ".partial-"))
        dataset.save_to_disk(str(partial))
        (partial / "complete").write_text("ok\n")
        try:
            os.replace(partial, cached)  # another process may have won the race: its copy is identical
        except OSError:
            import shutil

            shutil.rmtree(partial, ignore_errors=True)  # our own temporary copy, not needed any more
        logger.info("cached tokenised data in %s", cached)
    return dataset


# ---- inspection (notebooks/data_inspection.ipynb) ----------------------------------------------


def inspect_conversations(
    records: list[dict[str, Any]], tokenizer: Any, template_name: str, cutoff_len: int
) -> list[dict[str, Any]]:
    """Per record: its source, prompt and response token counts before truncation, and whether
    cutoff_len cuts it (response tokens = every trained token, prompt = the rest)."""
    from common.templates import conversation_pieces_ids, get_template

    template = get_template(template_name)
    rows = []
    for record in records:
        pieces = conversation_pieces_ids(template, tokenizer, record["messages"], record.get("system"))
        prompt = sum(len(ids) for ids, trained in pieces if not trained)
        response = sum(len(ids) for ids, trained in pieces if trained)
        rows.append({"source": record.get("_source", "?"), "turns": len(record["messages"]) // 2,
                     "prompt_tokens": prompt, "response_tokens": response,
                     "truncated": prompt + response > cutoff_len})  # fmt: skip
    return rows


def mark_trained(example: dict[str, list[int]], tokenizer: Any, left: str = "【", right: str = "】") -> str:
    """The example's text with every trained span (labels != IGNORE_INDEX) between `left` and `right`."""
    text, span, trained_now = [], [], False
    for token, label in zip(example["input_ids"], example["labels"], strict=True):
        trained = label != IGNORE_INDEX
        if trained != trained_now and span:
            piece = tokenizer.decode(span)
            text.append(f"{left}{piece}{right}" if trained_now else piece)
            span = []
        span.append(token)
        trained_now = trained
    if span:
        piece = tokenizer.decode(span)
        text.append(f"{left}{piece}{right}" if trained_now else piece)
    return "".join(text)
