"""Run configuration: typed defaults < JSON run config files < command-line flags.

Every script describes its settings as one dataclass whose fields carry a `help` metadata line.
`parse_config` builds the command line from those fields, reads the JSON files the user names
(BELLE's `--model_config_file`, `--lora_hyperparams_file`, ...), and applies flags last. A key that
is not a field is an error that names the file, the key, and the valid keys: a misspelt
`learning_rat` must never be dropped silently.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

ConfigT = TypeVar("ConfigT")


class ConfigError(ValueError):
    """A run configuration problem the user must fix; scripts print it without a traceback."""


def _field_type(field: dataclasses.Field, hints: dict[str, Any]) -> tuple[type, bool]:
    """The field's base type, and whether None is allowed (`int | None` -> (int, True))."""
    hint = hints[field.name]
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        return non_none[0], len(non_none) < len(args)
    return hint, False


def _coerce(value: Any, base: type, optional: bool, where: str) -> Any:
    """Turn a JSON value or command-line string into the field's type, or explain why not."""
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null") and optional):
        if optional:
            return None
        raise ConfigError(f"{where}: null is not allowed here")
    origin = typing.get_origin(base) or base
    try:
        if origin is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "1", "yes"):
                return True
            if isinstance(value, str) and value.lower() in ("false", "0", "no"):
                return False
            raise ValueError
        if origin is list:
            if isinstance(value, str):
                stripped = value.strip()
                value = json.loads(stripped) if stripped.startswith("[") else stripped.split(",")
            if not isinstance(value, list):
                raise ValueError
            return [str(v).strip() for v in value if str(v).strip()]
        if origin is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if origin is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if origin is str:
            if not isinstance(value, str | int | float):
                raise ValueError
            return str(value)
    except (ValueError, TypeError, json.JSONDecodeError):
        pass
    else:
        return value
    type_name = getattr(origin, "__name__", str(origin))
    raise ConfigError(f"{where}: expected {type_name}{' or null' if optional else ''}, got {value!r}")


def _unknown_key_message(key: str, valid: list[str], where: str) -> str:
    close = difflib.get_close_matches(key, valid, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return f"{where}: unknown key '{key}'.{hint} Valid keys: {', '.join(sorted(valid))}"


def read_json_object(path: Path, error: type[Exception] = ConfigError) -> dict[str, Any]:
    """A JSON object from a file the user wrote (UTF-8, a BOM allowed), every problem one `error` naming the
    file and line; keys starting with '_' (like "_doc") are comments and left out."""
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as err:
        raise error(f"{path}:{err.lineno}: invalid JSON: {err.msg}") from None
    except UnicodeDecodeError as err:
        raise error(f"{path}: not valid UTF-8 ({err.reason})") from None
    if not isinstance(data, dict):
        raise error(f"{path}: expected a JSON object, got {type(data).__name__}")
    return {k: v for k, v in data.items() if not k.startswith("_")}


def read_json_config(path: str | Path) -> dict[str, Any]:
    """Read one JSON run config."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    return read_json_object(path)


# The JSON files every training stage reads, in this order (BELLE's flags): a later file overrides an earlier one.
RUN_CONFIG_FILES = {
    "model_config_file": "run config: a JSON object of any keys below (run_config/ and run_config/tiny/ hold examples)",
    "lora_hyperparams_file": "LoRA hyper-parameters (lora_r, lora_alpha, lora_dropout, lora_target_modules)",
}


def parse_config(
    config_cls: type[ConfigT],
    argv: list[str] | None = None,
    description: str = "",
    config_file_flags: dict[str, str] | None = None,
) -> ConfigT:
    """Build `config_cls` from defaults, then the JSON files named by `config_file_flags`, then flags.

    `config_file_flags` maps a flag (e.g. "model_config_file") to its help line. Files are applied
    in that order, so a later file (LoRA hyper-parameters) overrides an earlier one.
    """
    config_file_flags = config_file_flags or {}
    fields = [f for f in dataclasses.fields(config_cls) if f.init]
    hints = typing.get_type_hints(config_cls)
    valid = [f.name for f in fields]

    parser = argparse.ArgumentParser(
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    files = parser.add_argument_group("run config files (JSON; flags below override them)")
    for flag, help_text in config_file_flags.items():
        files.add_argument(f"--{flag}", default=None, metavar="FILE", help=help_text)
    settings = parser.add_argument_group(
        "settings (defaults shown; also keys of the JSON files)" if config_file_flags else "settings"
    )
    for f in fields:
        base, optional = _field_type(f, hints)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        help_text = f"{field_help(config_cls, f.name)} (default: {default!r})".replace("%", "%%")
        if base is bool:
            # `--use_lora` alone means true, as in BELLE; `--use_lora false` also works.
            settings.add_argument(f"--{f.name}", nargs="?", const="true", default=None, help=help_text)
        else:
            settings.add_argument(f"--{f.name}", default=None, help=help_text)

    args, unknown = parser.parse_known_args(argv)
    if unknown:
        flag = unknown[0].split("=")[0].lstrip("-")
        parser.error(_unknown_key_message(flag, valid + list(config_file_flags), "command line"))

    values: dict[str, Any] = {}
    for flag in config_file_flags:
        path = getattr(args, flag)
        if path is None:
            continue
        for key, value in read_json_config(path).items():
            if key not in valid:
                raise ConfigError(_unknown_key_message(key, valid, str(path)))
            base, optional = _field_type(next(f for f in fields if f.name == key), hints)
            values[key] = _coerce(value, base, optional, f"{path}: key '{key}'")
    for f in fields:
        raw = getattr(args, f.name)
        if raw is not None:
            base, optional = _field_type(f, hints)
            values[f.name] = _coerce(raw, base, optional, f"command line: --{f.name}")

    config = config_cls(**values)
    for flag in config_file_flags:
        # Remember which files built this run; they go into the resolved config and the manifest.
        setattr(config, f"_{flag}", getattr(args, flag))
    validate = getattr(config, "validate", None)
    if validate is not None:
        validate()
    return config


def config_to_dict(config: Any) -> dict[str, Any]:
    """The resolved settings plus the config files they came from, ready for JSON."""
    resolved = dataclasses.asdict(config)
    sources = {k.lstrip("_"): v for k, v in vars(config).items() if k.startswith("_") and v is not None}
    if sources:
        resolved["_config_files"] = sources
    return resolved


def config_field(default: Any, help: str) -> Any:  # noqa: A002 - mirrors argparse's name
    """A dataclass field with its help line; lists get a factory so instances never share one."""
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata={"help": help})
    return dataclasses.field(default=default, metadata={"help": help})


def stage_default(default: Any) -> Any:
    """Another default for a setting a shared group declares: the help line stays the group's (one
    declaration per setting); a stage only says that its runs start from a different value."""
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata={"stage_default": True})
    return dataclasses.field(default=default, metadata={"stage_default": True})


def field_help(config_cls: type, name: str) -> str:
    """The help line of a setting: from the group that declares it, also when a stage changed its default."""
    for cls in config_cls.__mro__:
        field = getattr(cls, "__dataclass_fields__", {}).get(name)
        if field is not None and "help" in field.metadata:
            return field.metadata["help"]
    return ""


class Settings:
    """Base of every settings group and of the stage configs composed from them.

    Each group declares its fields and a `check` method that validates only those; `validate` runs the
    checks of every class in the composition once, so a setting shared by five stages is validated in
    one place.
    """

    def validate(self) -> None:
        for cls in reversed(type(self).__mro__):
            check = cls.__dict__.get("check")
            if check is not None:
                check(self)
