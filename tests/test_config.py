"""Config layering: defaults < JSON files < flags, and every wrong key or type is a clear error."""

from __future__ import annotations

import dataclasses
import json

import pytest

from common.config import ConfigError, config_field, config_to_dict, parse_config


@dataclasses.dataclass
class ToyConfig:
    learning_rate: float = config_field(1e-5, "peak learning rate")
    cutoff_len: int = config_field(1024, "max tokens")
    use_lora: bool = config_field(False, "LoRA or not")
    lora_target_modules: list[str] | None = config_field(None, "modules")
    resume_from_checkpoint: str | None = config_field(None, "checkpoint")


FILES = {"model_config_file": "run config", "lora_hyperparams_file": "lora config"}


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def test_defaults_then_json_then_flags(tmp_path):
    model = write(
        tmp_path, "m.json", {"_doc": "comment keys are ignored", "learning_rate": 3e-4, "cutoff_len": 64}
    )
    lora = write(tmp_path, "l.json", {"cutoff_len": 32, "lora_target_modules": ["q_proj", "v_proj"]})
    config = parse_config(
        ToyConfig,
        ["--model_config_file", model, "--lora_hyperparams_file", lora, "--cutoff_len", "16", "--use_lora"],
        config_file_flags=FILES,
    )
    assert config.learning_rate == 3e-4  # from the first file
    assert config.cutoff_len == 16  # flag beats both files (the second file's 32 beat the first's 64)
    assert config.use_lora is True  # a bare boolean flag means true, as in BELLE's --use_lora
    assert config.lora_target_modules == ["q_proj", "v_proj"]
    assert config.resume_from_checkpoint is None
    resolved = config_to_dict(config)
    assert resolved["_config_files"] == {"model_config_file": model, "lora_hyperparams_file": lora}


def test_second_file_overrides_first(tmp_path):
    model = write(tmp_path, "m.json", {"cutoff_len": 64})
    lora = write(tmp_path, "l.json", {"cutoff_len": 32})
    config = parse_config(
        ToyConfig, ["--model_config_file", model, "--lora_hyperparams_file", lora], config_file_flags=FILES
    )
    assert config.cutoff_len == 32


@pytest.mark.parametrize(
    ("flag", "value", "expected"),
    [
        ("--use_lora", "false", False),
        ("--lora_target_modules", "q_proj,v_proj", ["q_proj", "v_proj"]),
        ("--lora_target_modules", '["W_pack"]', ["W_pack"]),
        ("--resume_from_checkpoint", "null", None),
        ("--learning_rate", "2e-4", 2e-4),
    ],
)
def test_flag_values_are_typed(flag, value, expected):
    assert getattr(parse_config(ToyConfig, [flag, value]), flag.lstrip("-")) == expected


def test_unknown_json_key_names_file_key_and_valid_keys(tmp_path):
    path = write(tmp_path, "m.json", {"learning_rat": 1e-4})
    with pytest.raises(ConfigError) as err:
        parse_config(ToyConfig, ["--model_config_file", path], config_file_flags=FILES)
    message = str(err.value)
    assert path in message and "'learning_rat'" in message
    assert "Did you mean learning_rate?" in message
    assert (
        "Valid keys: cutoff_len, learning_rate, lora_target_modules, resume_from_checkpoint, use_lora"
        in message
    )


def test_unknown_flag_is_an_error_naming_valid_keys(capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_config(ToyConfig, ["--cutof_len", "3"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "unknown key 'cutof_len'" in err and "Did you mean cutoff_len?" in err


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"cutoff_len": "long"}, "key 'cutoff_len': expected int, got 'long'"),
        ({"cutoff_len": 1.5}, "expected int, got 1.5"),
        ({"use_lora": "maybe"}, "expected bool"),
        ({"learning_rate": None}, "null is not allowed"),
    ],
)
def test_wrong_types_are_errors(tmp_path, data, fragment):
    path = write(tmp_path, "m.json", data)
    with pytest.raises(ConfigError, match=fragment):
        parse_config(ToyConfig, ["--model_config_file", path], config_file_flags=FILES)


def test_bad_json_names_file_and_line(tmp_path):
    path = tmp_path / "m.json"
    path.write_text('{\n  "cutoff_len": 64,\n  "learning_rate": ,\n}')
    with pytest.raises(ConfigError, match=rf"{path}:3: invalid JSON"):
        parse_config(ToyConfig, ["--model_config_file", str(path)], config_file_flags=FILES)


def test_config_file_not_utf8_or_not_an_object_is_one_error(tmp_path):
    path = tmp_path / "m.json"
    path.write_bytes(b'{"learning_rate": "\xff"}')
    with pytest.raises(ConfigError, match=rf"^{path}: not valid UTF-8 \(invalid start byte\)$"):
        parse_config(ToyConfig, ["--model_config_file", str(path)], config_file_flags=FILES)
    path.write_text("[1, 2]")
    with pytest.raises(ConfigError, match=rf"^{path}: expected a JSON object, got list$"):
        parse_config(ToyConfig, ["--model_config_file", str(path)], config_file_flags=FILES)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        parse_config(ToyConfig, ["--model_config_file", str(tmp_path / "nope.json")], config_file_flags=FILES)


def test_shipped_run_configs_parse():
    """Every shipped finetune run config resolves with no unknown key (the real and the tiny ones)."""
    from pathlib import Path

    import scripts.finetune as finetune
    from common.families import FAMILIES

    root = Path(__file__).resolve().parent.parent / "run_config"
    for folder in (root, root / "tiny"):
        for arch, lora in (("Bloom", "bloom"), ("Llama", "llama")):
            config = parse_config(
                finetune.FinetuneConfig,
                ["--model_config_file", str(folder / f"{arch}_config.json"),
                 "--lora_hyperparams_file", str(folder / f"lora_hyperparams_{lora}.json"), "--use_lora"],
                config_file_flags=FILES,
            )  # fmt: skip
            assert config.model_type == lora and config.use_lora
            assert config.lora_target_modules == list(FAMILIES[lora].lora_targets)


STAGES = {
    "finetune": ("scripts.finetune", "FinetuneConfig"),
    "pretrain": ("scripts.pretrain", "PretrainConfig"),
    "train_rm": ("scripts.train_rm", "RewardModelConfig"),
    "train_dpo": ("scripts.train_dpo", "DPOStageConfig"),
    "train_ppo": ("scripts.train_ppo", "PPOConfig"),
    "train_kto": ("scripts.train_kto", "KTOStageConfig"),
    "train_grpo": ("scripts.train_grpo", "GRPOStageConfig"),
}


def stage_configs() -> dict[str, type]:
    import importlib

    return {name: getattr(importlib.import_module(module), cls) for name, (module, cls) in STAGES.items()}


def test_every_setting_is_declared_once_with_its_help():
    """A key two stages share is declared (with its help line) in exactly one class; stages only change its
    default (stage_default). Every key of every stage has a help line for --help."""
    import dataclasses

    from common.config import field_help

    declared: dict[str, set[str]] = {}
    for config_cls in stage_configs().values():
        for cls in config_cls.__mro__:
            for f in getattr(cls, "__dataclass_fields__", {}).values():
                if "help" in f.metadata and f.name in cls.__dict__.get("__annotations__", {}):
                    declared.setdefault(f.name, set()).add(cls.__qualname__)
        for f in dataclasses.fields(config_cls):
            assert field_help(config_cls, f.name), f"{config_cls.__name__}.{f.name} has no help line"
    twice = {name: owners for name, owners in declared.items() if len(owners) > 1}
    # loss_type is TRL's and LLaMA-Factory's name for two different choices: DPO's objective, GRPO's token averaging
    assert twice == {"loss_type": {"DPOStageConfig", "GRPOSettings"}}


def test_groups_validate_once_for_every_stage():
    """A shared key's check lives in its group and runs for each stage that composes it."""
    for config_cls in stage_configs().values():
        with pytest.raises(ConfigError, match="precision must be"):
            parse_config(config_cls, ["--precision", "fp64"])
        with pytest.raises(ConfigError, match="learning_rate must be > 0"):
            parse_config(config_cls, ["--learning_rate", "0"])
        with pytest.raises(ConfigError, match="quantization_bit must be 4, 8"):
            parse_config(config_cls, ["--quantization_bit", "3", "--use_lora"])
        with pytest.raises(ConfigError, match="set use_lora true"):
            parse_config(config_cls, ["--quantization_bit", "4"])


def test_stage_defaults_keep_the_group_help():
    import scripts.finetune as finetune
    import scripts.pretrain as pretrain
    from common.config import field_help

    assert finetune.FinetuneConfig().learning_rate == 2e-5 and pretrain.PretrainConfig().learning_rate == 2e-4
    assert field_help(pretrain.PretrainConfig, "learning_rate") == "peak learning rate"


def test_model_type_chooses_the_default_lora_targets(tiny_llama):
    """model_type names the family whose LoRA targets are used (BELLE's configs set it); null reads the weights."""
    from transformers import AutoModelForCausalLM

    from common.families import lora_target_modules

    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    assert lora_target_modules(model, None) == ["q_proj", "v_proj"]
    assert lora_target_modules(model, None, "baichuan") == ["W_pack"]
    assert lora_target_modules(model, ["k_proj"], "baichuan") == ["k_proj"]  # an explicit list wins


@pytest.mark.parametrize("stage", ["rm", "dpo", "ppo"])
def test_shipped_rlhf_configs_parse(stage):
    """The RLHF run configs (real and tiny) resolve with no unknown key, and the tiny chain agrees:
    PPO reads the reward model the tiny RM config writes."""
    import json
    from pathlib import Path

    import scripts.train_dpo as train_dpo
    import scripts.train_ppo as train_ppo
    import scripts.train_rm as train_rm

    config_class = {
        "rm": train_rm.RewardModelConfig,
        "dpo": train_dpo.DPOStageConfig,
        "ppo": train_ppo.PPOConfig,
    }
    root = Path(__file__).resolve().parent.parent / "run_config"
    for folder in (root, root / "tiny"):
        path = folder / f"{stage}_config.json"
        config = parse_config(
            config_class[stage], ["--model_config_file", str(path)], config_file_flags=FILES
        )
        assert config.output_dir == json.loads(path.read_text())["output_dir"]
    tiny_rm = json.loads((root / "tiny" / "rm_config.json").read_text())["output_dir"]
    assert json.loads((root / "tiny" / "ppo_config.json").read_text())["reward_model"] == tiny_rm
