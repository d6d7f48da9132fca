"""Reading data in every supported format, normalising it to one conversation shape, and tokenising it.

Rendering a conversation into ids and labels (chat templates, label masks, truncation) lives in
common/templates.py; this module reads files and the dataset registry, reports bad records by file and
line, and caches tokenised data.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import inspect
import json
import logging
import random
import re
import unicodedata
from pathlib import Path
from typing import Any

from common.config import read_json_object

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
#   SFT:        {"system": str | None, "tools": str | None,
#                "messages": [{"role": "user"|"assistant"|"function_call"|"observation", "content": str}, ...]}
#               (user-side turns, user or observation, alternate with assistant-side turns, assistant or
#               function_call; a function_call's content is the call as a JSON string, an observation's the
#               tool's result, "tools" the tool definitions as a JSON string)
#   preference: the same, with the prompt conversation ending on a user-side turn, plus "chosen" / "rejected"
#   KTO:        the same prompt conversation plus "completion" (the answer) and "label" (True = desirable)
#   pre-train:  {"text": str}
# plus "_where" (file:line or file: item i, for error messages) and "_source" (the dataset name).

MAX_LISTED_PROBLEMS = 10
DETECTION_SAMPLE = 2000  # records read to recognise a --data_path file's format (the majority decides)
ALPACA_COLUMNS = {"prompt": "instruction", "query": "input", "response": "output", "history": "history",
                  "system": "system", "chosen": "chosen", "rejected": "rejected"}  # fmt: skip
SHAREGPT_COLUMNS = {
    "messages": "conversations",
    "system": "system",
    "chosen": "chosen",
    "rejected": "rejected",
}
SHAREGPT_TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
                 "observation_tag": "observation", "function_tag": "function_call",
                 "system_tag": "system"}  # fmt: skip
OPENAI_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
               "observation_tag": "tool", "function_tag": "function_call", "system_tag": "system"}  # fmt: skip
USER_SIDE, ASSISTANT_SIDE = ("user", "observation"), ("assistant", "function_call")
# LLaMA-Factory's dataset_info.json keys (its data/README.md): what the registry accepts.
REGISTRY_COLUMNS = ("prompt", "query", "response", "history", "messages", "system", "tools", "images", "videos",
                    "audios", "chosen", "rejected", "kto_tag", "text")  # fmt: skip
MEDIA_COLUMNS = ("images", "videos", "audios")
SOURCES = ("file", "hf_hub", "ms_hub", "om_hub", "script", "cloud_file")  # values of `load_from`
_BELLE_TURN = re.compile(r"(?:^|\n)\s*(Human|Assistant)\s*[:：]")


class RecordError(ValueError):
    """One bad record; the loader adds where it is and decides whether to stop or skip."""


# Registry sources LLaMA-Factory loads and this repo refuses, when an entry is used: (its key, why and what to do).
UNLOADED_SOURCES = {
    "ms_hub": ("ms_hub_url", "is on the ModelScope hub, which this repo does not load; download it and "
                             "register file_name"),
    "om_hub": ("om_hub_url", "is on the Modelers (OpenMind) hub, which this repo does not load; download it "
                             "and register file_name"),
    "script": ("script_url", "is a dataset loading script, not run here (it executes code); convert the data "
                             "to a file and register file_name"),
    "cloud_file": ("cloud_file_name", "is not read here; copy the file locally and register file_name"),
}  # fmt: skip


@dataclasses.dataclass
class DatasetSpec:
    """One entry of dataset_info.json (LLaMA-Factory's keys), or a file given with --data_path."""

    name: str
    file_name: str | None = None
    hf_hub_url: str | None = None
    ms_hub_url: str | None = None  # ModelScope: accepted in the registry, refused when the entry is used
    om_hub_url: str | None = None  # Modelers (OpenMind): likewise
    script_url: str | None = None  # a dataset loading script: likewise (it would run code)
    cloud_file_name: str | None = None  # s3:// or gs:// file: likewise
    load_from: str | None = None  # file, hf_hub, ms_hub, om_hub, script, cloud_file (null: by keys)
    folder: str | None = None  # a folder of the hub repository
    subset: str | None = None
    split: str = "train"
    num_samples: int | None = None  # sample this many records (seeded; more than there are repeats some)
    formatting: str = "alpaca"  # alpaca | sharegpt | text
    ranking: bool = False
    columns: dict[str, str] = dataclasses.field(default_factory=dict)
    tags: dict[str, str] = dataclasses.field(default_factory=dict)
    detected: bool = False  # a --data_path file whose format was recognised from its records

    def column(self, key: str) -> str | None:
        defaults = SHAREGPT_COLUMNS if self.formatting == "sharegpt" else ALPACA_COLUMNS
        if self.formatting == "text":
            defaults = {"text": self.columns.get("prompt", "text")}
        return self.columns.get(key, defaults.get(key))

    def tag(self, key: str) -> str:
        return self.tags.get(key, SHAREGPT_TAGS[key])

    @property
    def kto(self) -> bool:
        return bool(self.columns.get("kto_tag"))

    @property
    def kind(self) -> str:
        """What the records are for: text, sft, preference or kto."""
        if self.formatting == "text":
            return "text"
        return "kto" if self.kto else "preference" if self.ranking else "sft"

    def source(self) -> str:
        """Where the records come from (LLaMA-Factory's order when load_from is not given: hub, script,
        cloud, file; here a local file_name comes first, since every run is meant to work offline)."""
        if self.load_from:
            return self.load_from
        if self.file_name:
            return "file"
        for key, source in (("hf_hub_url", "hf_hub"), ("ms_hub_url", "ms_hub"), ("om_hub_url", "om_hub"),
                            ("script_url", "script"), ("cloud_file_name", "cloud_file")):  # fmt: skip
            if getattr(self, key):
                return source
        return "file"

    def check_usable(self) -> None:
        """The registry accepts every LLaMA-Factory key; what this repo cannot do offline is refused here,
        when the entry is used, in one line."""
        source = self.source()
        if source in UNLOADED_SOURCES:
            key, why = UNLOADED_SOURCES[source]
            raise DataError(f"dataset {self.name!r}: {key} {getattr(self, key)!r} {why}")
        if source == "hf_hub" and not self.hf_hub_url:
            raise DataError(f"dataset {self.name!r}: load_from hf_hub needs hf_hub_url")
        if source == "file" and not self.file_name:
            raise DataError(f"dataset {self.name!r}: no file_name (and no hub entry this repo can load)")
        if source == "file" and self.split != "train":
            raise DataError(f"dataset {self.name!r}: split {self.split!r} only applies to hub datasets; "
                            "a local file is one split")  # fmt: skip
        media = [c for c in MEDIA_COLUMNS if self.columns.get(c)]
        if media:
            raise DataError(f"dataset {self.name!r}: columns {', '.join(media)} hold multimodal input, which "
                            "this repo does not train (text-only models)")  # fmt: skip


# ---- reading files, collecting problems -----------------------------------------------------------


def read_records(path: str | Path, problems: list[str] | None = None) -> list[dict[str, Any]]:
    """Records of a .json / .jsonl file (array or lines) or a .txt file (one {"text"} per non-empty line).

    A UTF-8 byte-order mark is dropped. With `problems` given, a line that is not UTF-8 or not a JSON object
    is noted there and skipped instead of stopping the read (a JSON array is one document: it stops).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if not data.strip():
        raise DataError(f"{path}: the file is empty")
    if path.suffix != ".txt" and data.lstrip().startswith(b"["):
        return read_json_records(path)  # an array: one document, read whole (errors name the line)

    def problem(message: str) -> None:
        if problems is None:
            raise DataError(message)
        problems.append(message)

    records = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            problem(f"{path}:{number}: not valid UTF-8 ({err.reason})")
            continue
        if not line.strip():
            continue
        if path.suffix == ".txt":
            records.append({"text": line.rstrip("\r"), "_where": f"{path}:{number}"})
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            problem(f"{path}:{number}: invalid JSON line: {err.msg} (column {err.colno})")
            continue
        if not isinstance(record, dict):
            problem(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
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
        reason = re.sub(r"^.*?:\d+: |^.*?: item \d+: |^.*?: ", "", problem, count=1)
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


def _parsed_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise RecordError(f"{what} is not valid JSON ({err.msg})") from None


def _json_text(value: Any, what: str) -> str:
    """A tool call or tool list as a JSON string: a string must parse, a list or object is serialised."""
    if isinstance(value, str):
        _parsed_json(value, what)
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    raise RecordError(f"{what} must be a JSON string, object or list, got {type(value).__name__}")


def _tools(record: dict[str, Any], spec: DatasetSpec) -> str | None:
    column = spec.column("tools")
    value = record.get(column) if column else None
    if value is None or value == "" or value == []:
        return None
    return _json_text(value, f"'{column}'")


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
        spec.tag("observation_tag"): "observation",
        spec.tag("function_tag"): "function_call",
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
        if role == "assistant" and turn.get("tool_calls"):  # OpenAI's form of a function call
            if isinstance(content, str) and content.strip():
                raise RecordError(
                    f"turn {i}: an assistant turn with both text and tool_calls (split it in two)"
                )
            role, content = "function_call", _openai_tool_calls(turn["tool_calls"], i)
        if role == "function_call":
            content = _json_text(content, f"turn {i}: the function call")
        if not isinstance(content, str):
            raise RecordError(f"turn {i}: '{spec.tag('content_tag')}' must be a string")
        if role == "system" and i == 0:
            system = content
        else:
            messages.append({"role": role, "content": content})
    return system, messages


def _openai_tool_calls(calls: Any, turn: int) -> str:
    """OpenAI `tool_calls` as LLaMA-Factory's function_call content: {"name", "arguments"} as JSON, a list
    of them for parallel calls."""
    if not isinstance(calls, list) or not all(isinstance(c, dict) for c in calls):
        raise RecordError(f"turn {turn}: 'tool_calls' must be a list of objects")
    parsed = []
    for call in calls:
        function = call.get("function", call)
        arguments = function.get("arguments", {})
        if isinstance(arguments, str):
            arguments = _parsed_json(arguments, f"turn {turn}: the tool call's arguments")
        if not isinstance(function.get("name"), str):
            raise RecordError(f"turn {turn}: a tool call needs a string 'name'")
        parsed.append({"name": function["name"], "arguments": arguments})
    return json.dumps(parsed[0] if len(parsed) == 1 else parsed, ensure_ascii=False)


def check_conversation(messages: list[dict[str, str]], answer_last: bool = True) -> None:
    """User-side turns (user, observation) alternate with assistant-side ones (assistant, function_call),
    starting with the user; training data ends with an answer, a prompt with a user-side turn."""
    for i, message in enumerate(messages):
        expected, side = ("user", USER_SIDE) if i % 2 == 0 else ("assistant", ASSISTANT_SIDE)
        if message["role"] not in side:
            raise RecordError(f"turn {i} is {message['role']!r} where {expected!r} was expected "
                              "(roles must alternate, starting with the user)")  # fmt: skip
        if expected == "assistant" and not message["content"].strip():
            raise RecordError(f"turn {i}: empty response")
    if not messages:
        raise RecordError("no turns")
    if messages[0]["role"] != "user":
        raise RecordError(f"turn 0 is {messages[0]['role']!r}: a conversation starts with the user")
    if answer_last and messages[-1]["role"] not in ASSISTANT_SIDE:
        raise RecordError("the conversation ends with a user turn: no answer to train on")
    if not answer_last and messages[-1]["role"] not in USER_SIDE:
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


def _kto_label(record: dict[str, Any], spec: DatasetSpec) -> bool:
    column = spec.column("kto_tag")
    if column not in record:
        raise RecordError(f"'{column}' (the KTO label) is missing")
    value = record[column]
    if not isinstance(value, bool):
        raise RecordError(f"'{column}' (the KTO label) must be true or false, got {value!r}")
    return value


def normalise_record(record: dict[str, Any], spec: DatasetSpec) -> dict[str, Any]:
    """One raw record in the spec's format → the normalised shape above; RecordError says what is wrong."""
    if spec.formatting == "text":
        return {"text": _text(record, spec.column("text"), required=True)}
    system = None
    tools = _tools(record, spec)
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
        return {
            "system": system,
            "tools": tools,
            "messages": messages,
            "chosen": chosen,
            "rejected": rejected,
        }
    if spec.formatting == "sharegpt":
        system, messages = _sharegpt_messages(record, spec)
    else:
        response = _text(record, spec.column("response"), required=True, allow_empty=True)
        messages = _alpaca_messages(record, spec, response)
    check_conversation(messages)
    system = _text(record, spec.column("system"), required=False) or system
    if spec.kto:
        label = _kto_label(record, spec)
        if messages[-1]["role"] != "assistant":
            raise RecordError(
                "a KTO record must end with an assistant answer (the completion that is labelled)"
            )
        return {"system": system, "tools": tools, "messages": messages[:-1],
                "completion": messages[-1]["content"], "label": label}  # fmt: skip
    return {"system": system, "tools": tools, "messages": messages}


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


def _registry_spec(path: Path, name: str, entry: Any) -> DatasetSpec:
    """One entry of dataset_info.json checked key by key (every key LLaMA-Factory documents is known)."""
    where = f"{path}: dataset {name!r}"
    if not isinstance(entry, dict):
        raise DataError(f"{where}: expected an object of keys, got {type(entry).__name__}")
    known = {f.name for f in dataclasses.fields(DatasetSpec)} - {"name", "detected"}
    unknown = set(entry) - known
    if unknown:
        raise DataError(f"{where}: unknown key(s) {sorted(unknown)}; valid: {sorted(known)}")
    for key in ("columns", "tags"):
        if not isinstance(entry.get(key, {}), dict):
            raise DataError(f"{where}: '{key}' must be an object")
    unknown = set(entry.get("columns", {})) - set(REGISTRY_COLUMNS)
    if unknown:
        raise DataError(f"{where}: unknown column key(s) {sorted(unknown)}; valid: {list(REGISTRY_COLUMNS)}")
    unknown = set(entry.get("tags", {})) - set(SHAREGPT_TAGS)
    if unknown:
        raise DataError(f"{where}: unknown tag key(s) {sorted(unknown)}; valid: {list(SHAREGPT_TAGS)}")
    if entry.get("load_from") not in (None, *SOURCES):
        raise DataError(f"{where}: load_from must be one of {', '.join(SOURCES)}, got {entry['load_from']!r}")
    sources = ("file_name", "hf_hub_url", "ms_hub_url", "om_hub_url", "script_url", "cloud_file_name")
    if not any(entry.get(key) for key in sources):
        raise DataError(f"{where} needs one of {', '.join(sources)}")
    if entry.get("formatting", "alpaca") not in ("alpaca", "sharegpt", "text"):
        raise DataError(f"{where}: formatting must be alpaca, sharegpt or text")
    num_samples = entry.get("num_samples")
    if num_samples is not None and (not isinstance(num_samples, int) or num_samples < 1):
        raise DataError(f"{where}: num_samples must be a positive integer, got {num_samples!r}")
    spec = DatasetSpec(name=name, **entry)
    columns = spec.columns
    answers = ("response", "query", "history", "messages", "chosen", "rejected", "kto_tag")
    if "formatting" not in entry and "prompt" in columns and not any(k in columns for k in answers):
        spec.formatting = "text"  # LLaMA-Factory's pre-training entries: {"columns": {"prompt": "text"}}
    return spec


def load_dataset_info(dataset_dir: str | Path) -> dict[str, DatasetSpec]:
    """dataset_info.json in `dataset_dir` (LLaMA-Factory's format) as specs by name."""
    path = Path(dataset_dir) / "dataset_info.json"
    if not path.is_file():
        raise DataError(f"no dataset registry at {path} (needed for --dataset)")
    entries = read_json_object(path, DataError)  # an object of dataset entries by name
    return {name: _registry_spec(path, name, entry) for name, entry in entries.items()}


def _record_layout(record: dict[str, Any]) -> tuple[str, bool, bool, str | None]:
    """(formatting, OpenAI role/content tags, ranking, KTO label column) of one raw record."""
    kto = "kto_tag" if "kto_tag" in record else "label" if isinstance(record.get("label"), bool) else None
    ranking = "chosen" in record and "rejected" in record
    if "conversations" in record or "messages" in record:
        return "sharegpt", "conversations" not in record, ranking, kto
    if "text" in record and "instruction" not in record:
        return "text", False, False, None
    return "alpaca", False, ranking or isinstance(record.get("output"), list), kto


def _spec_with_layout(name: str, file_name: str, layout: tuple[str, bool, bool, str | None]) -> DatasetSpec:
    formatting, openai, ranking, kto = layout
    spec = DatasetSpec(name=name, file_name=file_name, formatting=formatting, ranking=ranking, detected=True)
    if openai:
        spec.columns, spec.tags = {"messages": "messages"}, dict(OPENAI_TAGS)
    if kto:
        spec.columns = spec.columns | {"kto_tag": kto}
    return spec


def spec_from_path(data_path: str | Path) -> DatasetSpec:
    """A spec for a file given directly: .txt is pre-training text; JSON is recognised by the keys of the
    majority of its readable records (the first DETECTION_SAMPLE), so one broken line decides nothing."""
    path = Path(data_path)
    spec = DatasetSpec(name=path.name, file_name=str(path))
    if path.suffix == ".txt":
        spec.formatting = "text"
        return spec
    try:
        records = _sample_records(path, DETECTION_SAMPLE)
    except DataError:
        return spec  # the real read reports the problem with its line
    votes = collections.Counter(_record_layout(r) for r in records)
    if not votes:
        return spec
    spec = _spec_with_layout(path.name, str(path), votes.most_common(1)[0][0])
    if any("tools" in r for r in records):
        spec.columns = spec.columns | {"tools": "tools"}
    return spec


def _sample_records(path: Path, count: int) -> list[dict[str, Any]]:
    """The first `count` readable JSON objects of a file (lines that do not parse are passed over); a JSON
    array is read whole."""
    if not path.is_file():
        return []
    with path.open("rb") as handle:
        if handle.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"["):
            return read_json_records(path)[:count]
        handle.seek(0)
        records = []
        for raw in handle:
            try:
                record = json.loads(raw.decode("utf-8-sig"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                continue
            if isinstance(record, dict):
                records.append(record)
                if len(records) == count:
                    break
    return records


KIND_NAMES = {"sft": "instruction/chat", "preference": "preference (chosen/rejected)",
              "kto": "KTO (labelled answers)", "text": "plain text"}  # fmt: skip


def _record_spec(record: dict[str, Any], spec: DatasetSpec, variants: dict[Any, DatasetSpec]) -> DatasetSpec:
    """The spec one record of a recognised --data_path file is read with: its own layout (alpaca, ShareGPT,
    OpenAI) when it is the same kind of data as the file's majority; another kind is a bad record."""
    if not spec.detected:
        return spec
    layout = _record_layout(record)
    if layout[0] == "alpaca" and not {"instruction", "output", "chosen", "rejected"} & record.keys():
        return spec  # no layout of its own: the majority's names what is missing
    if layout not in variants:
        variant = _spec_with_layout(spec.name, spec.file_name or "", layout)
        variant.columns = variant.columns | ({"tools": "tools"} if "tools" in spec.columns else {})
        variants[layout] = variant
    variant = variants[layout]
    if variant.kind != spec.kind:
        raise RecordError(f"a {KIND_NAMES[variant.kind]} record in a file of {KIND_NAMES[spec.kind]} records")
    return variant


def _raw_records(
    spec: DatasetSpec, dataset_dir: str | Path, problems: list[str] | None
) -> list[dict[str, Any]]:
    spec.check_usable()
    if spec.source() == "file":
        path = Path(spec.file_name or "")
        if not path.is_absolute() and not path.exists():
            path = Path(dataset_dir) / path
        if path.is_dir():  # a folder: every data file in it, in name order (the pre-training corpus)
            files = sorted(p for p in path.iterdir() if p.suffix in (".txt", ".json", ".jsonl"))
            if not files:
                raise DataError(f"dataset {spec.name!r}: no .txt/.json/.jsonl file in {path}")
            return [r for f in files for r in read_records(f, problems)]
        return read_records(path, problems)
    try:
        import datasets

        hub = datasets.load_dataset(spec.hf_hub_url, spec.subset, split=spec.split, data_dir=spec.folder)
    except Exception as err:  # noqa: BLE001 - any hub/network failure becomes one clear message
        raise DataError(f"dataset {spec.name!r}: cannot load {spec.hf_hub_url!r} from the Hugging Face hub "
                        f"(offline? set HF_ENDPOINT, or download it and register file_name): "
                        f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") from None  # fmt: skip
    return [dict(row, _where=f"{spec.hf_hub_url}[{i}]") for i, row in enumerate(hub)]


def sample_records(records: list[Any], num_samples: int, seed: int) -> list[Any]:
    """LLaMA-Factory's num_samples: a seeded sample in file order; asking for more than there are keeps
    every record and repeats randomly chosen ones."""
    rng = random.Random(seed)
    if num_samples <= len(records):
        return [records[i] for i in sorted(rng.sample(range(len(records)), num_samples))]
    return records + [records[i] for i in rng.choices(range(len(records)), k=num_samples - len(records))]


def load_normalised(
    spec: DatasetSpec,
    dataset_dir: str | Path = "data_dir",
    skip_bad_records: bool = False,
    max_samples: int | None = None,
    seed: int = 42,
) -> list[dict[str, Any]]:
    """Normalised records of one dataset; bad ones stop the run (listed) or are skipped (counted)."""
    problems: list[str] = []
    raw = _raw_records(spec, dataset_dir, problems)
    if max_samples is not None:
        raw = raw[:max_samples]
    records, variants = [], {}
    for record in raw:
        try:
            normal = normalise_record(record, _record_spec(record, spec, variants))
        except RecordError as err:
            problems.append(f"{record['_where']}: {err}")
            continue
        records.append(normal | {"_where": record["_where"], "_source": spec.name})
    report_problems(problems, skip_bad_records, spec.file_name or spec.hf_hub_url or spec.name)
    if not records:
        raise DataError(f"dataset {spec.name!r}: no usable record")
    if spec.num_samples is not None:
        logger.info("dataset %s: num_samples %d of %d records", spec.name, spec.num_samples, len(records))
        records = sample_records(records, spec.num_samples, seed)
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
        part = load_normalised(spec, dataset_dir, skip_bad_records, max_samples, seed)
        repeats = len(part) - len({record_key(r) for r in part})
        logger.info("dataset %s: %d records", spec.name, len(part))
        if repeats and spec.num_samples is None:  # num_samples may repeat records on purpose
            logger.warning("dataset %s: %d records repeat an earlier identical record", spec.name, repeats)
        records += part
    if len(specs) > 1:
        random.Random(seed).shuffle(records)
    return records


def _spec_of(source: str | Path | DatasetSpec, dataset_dir: str | Path) -> DatasetSpec:
    if isinstance(source, DatasetSpec):
        return source
    if Path(source).exists():
        return spec_from_path(source)
    return resolve_specs(str(source), None, dataset_dir)[0]


def load_records_of_kind(
    source: str | Path | DatasetSpec,
    dataset_dir: str | Path = "data_dir",
    skip_bad_records: bool = False,
    max_samples: int | None = None,
    *,
    kind: str,
) -> list[dict[str, Any]]:
    """One dataset's records, refused unless they are of `kind`; `source` is a registered name, a file or a
    DatasetSpec.

    - "preference": {"system", "tools", "messages" (prompt, ends on a user turn), "chosen", "rejected"} from
      chosen/rejected columns, alpaca `output: [chosen, rejected]`, raw HH-RLHF strings or sharegpt ranking.
    - "kto": {"system", "tools", "messages", "completion", "label"} from a registered entry whose columns name
      a kto_tag (LLaMA-Factory's KTO format, alpaca or sharegpt) or a file whose records carry `kto_tag` (or a
      boolean `label`). `label` True marks a desirable completion, False an undesirable one.
    """
    spec = _spec_of(source, dataset_dir)
    is_kind, missing = {
        "preference": (spec.ranking, "is not a preference dataset (no chosen/rejected; set ranking)"),
        "kto": (spec.kto, "is not KTO data (no true/false label per answer; name it in columns.kto_tag)"),
    }[kind]
    if not is_kind:
        raise DataError(f"dataset {spec.name!r} {missing}")
    return load_normalised(spec, dataset_dir, skip_bad_records, max_samples)


load_preference_records = functools.partial(load_records_of_kind, kind="preference")
load_kto_records = functools.partial(load_records_of_kind, kind="kto")


def refuse_other_kinds(records: list[dict[str, Any]], stage: str) -> None:
    """SFT trains every answer it is given: refuse text, preference and KTO records with what to do."""
    for record in records:
        source = record.get("_source", "?")
        if "messages" not in record:
            raise DataError(f"dataset {source!r} is pre-training text, not conversations; {stage} needs "
                            "instruction or chat data (pre-training: scripts/pretrain.py --dataset)")  # fmt: skip
        if "chosen" in record:
            raise DataError(f"dataset {source!r} holds preference pairs; use the RM/DPO scripts")
        if "label" in record:
            raise DataError(f"dataset {source!r} is KTO data (each answer labelled desirable or not): {stage} "
                            "would learn the undesirable answers too; train it with scripts/train_kto.py")  # fmt: skip


def tokenise_preferences(
    records: list[dict[str, Any]], tokenizer: Any, template_name: str, cutoff_len: int
) -> Any:
    """A datasets.Dataset of prompt_ids / chosen_ids / rejected_ids (TRL's processed preference columns),
    one row per pair that keeps an answer token after the cut; the others are counted and dropped."""
    from datasets import Dataset

    from common.templates import TemplateError, encode_preference_pair, get_template

    template = get_template(template_name)
    takes_tools = "tools" in inspect.signature(encode_preference_pair).parameters
    rows, dropped = [], 0
    for record in records:
        extra = {"tools": record["tools"]} if record.get("tools") else {}
        if extra and not takes_tools:
            raise DataError(f"{record.get('_where', '?')}: the pair defines tools, which preference pairs cannot "
                            "render yet (common/templates.py's encode_preference_pair has no tools argument)")  # fmt: skip
        try:
            pair = encode_preference_pair(template, tokenizer, record["messages"], record["chosen"],
                                          record["rejected"], record.get("system"), cutoff_len, **extra)  # fmt: skip
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

# Bump when the rendering or truncation code changes what a cached dataset holds (a template's own strings are
# in the key already). 2: belle/default/xverse answers open with the space after "Assistant:".
CACHE_VERSION = 2


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
    """Same data files (by content), specs, tokenizer, template (by its definition, not only its name) and
    cutoff → same key."""
    import hashlib

    from common.runs import sha256_of
    from common.templates import get_template

    if "template" in settings:  # an edited template must not load what the old one tokenised
        settings["template_definition"] = repr(get_template(settings["template"]))
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
    rows = Dataset.from_dict({"system": [r.get("system") for r in records],
                              "tools": [r.get("tools") for r in records],
                              "messages": [r["messages"] for r in records]})  # fmt: skip
    with_tools = next((r for r in records if r.get("tools")), None)
    if with_tools is not None and "tools" not in inspect.signature(encode_conversation).parameters:
        raise DataError(f"{with_tools.get('_where', '?')}: the record defines tools, which the chat templates "
                        "cannot render yet (common/templates.py has no tools argument)")  # fmt: skip

    def encode(batch: dict[str, list]) -> dict[str, list]:
        out: dict[str, list] = {"input_ids": [], "attention_mask": [], "labels": []}
        for system, tools, messages in zip(batch["system"], batch["tools"], batch["messages"], strict=True):
            extra = {"tools": tools} if tools else {}  # only tool data needs a tool-aware template
            example = encode_conversation(template, tokenizer, messages, system, cutoff_len, train_on_inputs,
                                          **extra)  # fmt: skip
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
    refuse_other_kinds(records, "fine-tuning")
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


def normalised_text(text: str) -> str:
    """What "the same text" means for duplicates and dev/train overlap: Unicode NFKC, every run of
    whitespace one space, no leading or trailing space."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def prompt_key(record: dict[str, Any]) -> str:
    """A normalised record's prompt as one normalised string: every turn before the answer (a record that
    ends on a user turn is all prompt); the system prompt is left out."""
    messages = record.get("messages")
    if messages is None:
        return normalised_text(record.get("text", ""))
    if messages and messages[-1]["role"] in ASSISTANT_SIDE:
        messages = messages[:-1]
    return "\n".join(normalised_text(m["content"]) for m in messages)


def record_key(record: dict[str, Any]) -> str:
    """The whole normalised record (prompt, system, tools and answers) as one string: identical records
    (after the format's normalisation; text itself is compared exactly) have the same key."""
    return json.dumps({k: v for k, v in record.items() if not k.startswith("_")}, ensure_ascii=False)


def duplicate_counts(records: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Per source: records, repeats of an earlier identical record, repeats of an earlier prompt."""
    counts: dict[str, dict[str, int]] = {}
    seen: dict[str, tuple[set[str], set[str]]] = {}
    for record in records:
        source = record.get("_source", "?")
        row = counts.setdefault(source, {"records": 0, "duplicate_records": 0, "duplicate_prompts": 0})
        records_seen, prompts_seen = seen.setdefault(source, (set(), set()))
        whole, prompt = record_key(record), prompt_key(record)
        row["records"] += 1
        row["duplicate_records"] += whole in records_seen
        row["duplicate_prompts"] += prompt in prompts_seen
        records_seen.add(whole)
        prompts_seen.add(prompt)
    return counts


def prompt_overlap(dev: list[dict[str, Any]], train: list[dict[str, Any]]) -> dict[str, Any]:
    """How many dev prompts also occur in the training data (exact match of `prompt_key`), with a few."""
    train_prompts = {prompt_key(r) for r in train}
    shared = [r for r in dev if prompt_key(r) in train_prompts]
    return {"dev": len(dev), "in_training": len(shared), "training": len(train),
            "examples": [prompt_key(r)[:200] for r in shared[:3]]}  # fmt: skip


def overlap_warning(overlap: dict[str, Any]) -> str | None:
    """One sentence for reports and logs, or None when no dev prompt is in the training data."""
    if not overlap["in_training"]:
        return None
    share = 100 * overlap["in_training"] / max(overlap["dev"], 1)
    return (f"{overlap['in_training']} of {overlap['dev']} dev prompts ({share:.0f}%) also occur in the "
            f"{overlap['training']} training records (same text after normalising whitespace): their scores "
            "measure recall of training data, not generalisation")  # fmt: skip


def as_conversation(record: dict[str, Any]) -> list[dict[str, str]]:
    """The turns to inspect: a preference pair with its chosen answer, a KTO record with its completion."""
    if "messages" not in record:
        raise DataError(f"{record.get('_where', '?')}: pre-training text has no conversation to inspect")
    answer = record.get("chosen", record.get("completion"))
    return record["messages"] + ([{"role": "assistant", "content": answer}] if answer is not None else [])


def inspect_conversations(
    records: list[dict[str, Any]], tokenizer: Any, template_name: str, cutoff_len: int
) -> list[dict[str, Any]]:
    """Per record: its source, prompt and response token counts before truncation, and whether
    cutoff_len cuts it (response tokens = every trained token, prompt = the rest). Preference pairs are
    measured with their chosen answer, KTO records with their completion."""
    from common.templates import conversation_pieces_ids, get_template

    template = get_template(template_name)
    takes_tools = "tools" in inspect.signature(conversation_pieces_ids).parameters
    rows = []
    for record in records:
        extra = {"tools": record["tools"]} if record.get("tools") and takes_tools else {}
        messages = as_conversation(record)
        pieces = conversation_pieces_ids(template, tokenizer, messages, record.get("system"), **extra)
        prompt = sum(len(ids) for ids, trained in pieces if not trained)
        response = sum(len(ids) for ids, trained in pieces if trained)
        rows.append({"source": record.get("_source", "?"), "turns": len(messages) // 2,
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
