"""scripts/train_kto.py on truly unpaired data in LLaMA-Factory's KTO format (`kto_tag`): the test writes the
chosen answer of half the sample's prompts as desirable and the rejected answer of the other half as
undesirable. KTO must raise the implied reward beta * (log pi - log ref) of desirable answers over undesirable
ones on held-out examples (measured here with plain torch), its run must resume bitwise, and preference pairs
must split into one desirable and one undesirable example each.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import REPO

BETA, CUTOFF, EXAMPLES, HELD_OUT, STEPS = 0.1, 64, 40, 8, 10


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two cores shared with other test processes
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def kto_data(tmp_path_factory) -> Path:
    pairs = [json.loads(line) for line in (REPO / "data_dir/sample_preference.json").read_text().splitlines()]
    path = tmp_path_factory.mktemp("kto-data") / "kto.json"
    records = [
        {"instruction": pair["instruction"], "input": pair["input"],
         "output": pair["chosen"] if i % 2 == 0 else pair["rejected"], "kto_tag": i % 2 == 0}
        for i, pair in enumerate(pairs[:EXAMPLES])
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return path


def kto_args(model: Path, data: Path, out: Path) -> list[str]:
    return ["--model_name_or_path", str(model), "--data_path", str(data), "--output_dir", str(out),
            "--beta", str(BETA), "--cutoff_len", str(CUTOFF), "--use_lora", "true", "--lora_target_modules", "all",
            "--learning_rate", "3e-3", "--lr_scheduler_type", "constant", "--max_steps", str(STEPS),
            "--batch_size", "8", "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "8",
            "--val_set_size", str(HELD_OUT), "--val_set_rate", "0.2", "--logging_steps", "1", "--save_steps", "4",
            "--save_total_limit", "null", "--eval_steps", "1000"]  # fmt: skip


def train_kto(*args: str) -> Path:
    """The script's main() in this process (the imports are paid once for the module)."""
    import scripts.train_kto as script

    return script.main(list(args))


@pytest.fixture(scope="module")
def kto_run(tiny_llama, kto_data, tmp_path_factory) -> Path:
    return train_kto(*kto_args(tiny_llama, kto_data, tmp_path_factory.mktemp("kto") / "run"))


def held_out_examples(tiny_llama: Path, kto_data: Path, out: Path):
    """The run's held-out examples, loaded and split by the script's own code with the run's settings."""
    from common.config import parse_config
    from common.modeling import load_tokenizer
    from scripts.train_kto import KTOStageConfig, load_kto_examples

    config = parse_config(KTOStageConfig, kto_args(tiny_llama, kto_data, out))
    _, dev, _ = load_kto_examples(config, load_tokenizer(str(tiny_llama)))
    assert len(dev) == HELD_OUT and 0 < sum(dev["label"]) < HELD_OUT  # both kinds held out
    return dev


def answer_logps(model, examples) -> torch.Tensor:
    """Summed log p(answer | prompt) of every example."""
    values = []
    with torch.no_grad():
        for prompt, answer in zip(examples["prompt_ids"], examples["completion_ids"], strict=True):
            logits = model(input_ids=torch.tensor([prompt + answer])).logits[0, len(prompt) - 1 : -1].float()
            values.append(logits.log_softmax(-1).gather(-1, torch.tensor(answer)[:, None]).sum())
    return torch.stack(values)


def test_kto_raises_the_implied_reward_margin_on_held_out_examples(kto_run, tiny_llama, kto_data):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    dev = held_out_examples(tiny_llama, kto_data, kto_run)
    reference = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32).eval()
    policy = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32),
                                       str(kto_run)).eval()  # fmt: skip
    rewards = BETA * (answer_logps(policy, dev) - answer_logps(reference, dev))
    desirable = torch.tensor(dev["label"])
    margin = (
        rewards[desirable].mean() - rewards[~desirable].mean()
    ).item()  # 0 at the start: policy = reference
    print(f"KTO: held-out implied reward margin 0 -> {margin:.3f} (desirable {rewards[desirable].mean():.3f}, "
          f"undesirable {rewards[~desirable].mean():.3f})")  # fmt: skip
    assert margin > 0.2, margin  # 0 at the start (the policy is its reference); 0.39 when written
    reported = json.loads((kto_run / "eval_results.json").read_text())
    assert reported["eval_rewards/margins"] == pytest.approx(margin, rel=1e-3)
    assert json.loads((kto_run / "kto_config.json").read_text())["beta"] == BETA


def test_kto_resume_equals_the_uninterrupted_run(kto_run, tiny_llama, kto_data, tmp_path, monkeypatch):
    from test_train_grpo import checkpoints_resumed

    resumed = tmp_path / "resumed"
    shutil.copytree(kto_run, resumed)
    for leftover in (
        "adapter_model.safetensors",
        "train_results.json",
        "all_results.json",
        "trainer_state.json",
    ):
        (resumed / leftover).unlink()
    shutil.rmtree(resumed / f"checkpoint-{STEPS}")  # the run "died" after checkpoint-8
    resumed_from = checkpoints_resumed(monkeypatch)
    train_kto(*kto_args(tiny_llama, kto_data, resumed), "--resume_from_checkpoint", "true")
    assert resumed_from == [resumed / "checkpoint-8"]
    straight = load_file(str(kto_run / "adapter_model.safetensors"))
    again = load_file(str(resumed / "adapter_model.safetensors"))
    assert straight.keys() == again.keys()
    assert [name for name in straight if not torch.equal(straight[name], again[name])] == []


def test_preference_pairs_split_into_a_desirable_and_an_undesirable_example():
    from scripts.train_kto import unpaired_examples

    messages = [{"role": "user", "content": "2+2?"}]
    pair = {"messages": messages, "system": None, "chosen": "4", "rejected": "5", "_where": "x:1"}
    tagged = {"messages": messages, "system": "s", "completion": "22", "label": False, "_where": "y:1"}
    examples = unpaired_examples([pair, tagged])
    assert [(e["completion"], e["label"]) for e in examples] == [("4", True), ("5", False), ("22", False)]
    assert examples[2]["system"] == "s" and all(e["messages"] == messages for e in examples)


def test_shipped_configs_parse():
    from common.config import RUN_CONFIG_FILES, parse_config
    from scripts.train_kto import KTOStageConfig

    for path in (REPO / "run_config/kto_config.json", REPO / "run_config/tiny/kto_config.json"):
        config = parse_config(
            KTOStageConfig, ["--model_config_file", str(path)], config_file_flags=RUN_CONFIG_FILES
        )
        assert config.output_dir == json.loads(path.read_text())["output_dir"]


def test_bad_settings_are_one_line(tmp_path):
    from conftest import PYTHON, run_script

    result = run_script(PYTHON, "scripts/train_kto.py", "--per_device_train_batch_size", "1",
                        "--output_dir", str(tmp_path / "a"), check=False)  # fmt: skip
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "per_device_train_batch_size" in line and "KL" in line
    assert not (tmp_path / "a").exists()
