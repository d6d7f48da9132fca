"""scripts/train_grpo.py on a learnable toy task: a completion earns reward 1 when it contains the letter "a"
(the rule answer_format with answer_pattern "(a)"). The random tiny Llama writes one in about a third of its
4-token completions, so the groups differ and GRPO has a signal; full fine-tuning learns it within a few steps.

Measured here, not read from the run's log: completions sampled from the starting model and from the saved
policy, scored by the same rule. The advantages TRL trained on equal common.rlhf.group_advantages of the
rewards logged beside them, and a resume from a middle checkpoint ends with the uninterrupted run's weights.
(LoRA with a KL term and the reward model as reward: tests/test_rlhf_pipeline.py, stage grpo.)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import PYTHON, REPO, run_script

PATTERN, NEW_TOKENS, GENERATIONS, STEPS = "(a)", 4, 8, 6
TOY = ["--dataset", "sample_math", "--max_samples", "32", "--reward_funcs", "answer_format", "--answer_pattern",
       PATTERN, "--num_generations", str(GENERATIONS), "--max_new_tokens", str(NEW_TOKENS), "--batch_size", "16",
       "--per_device_train_batch_size", "16", "--max_steps", str(STEPS), "--learning_rate", "2e-2",
       "--use_lora", "false", "--kl_coef", "0", "--logging_steps", "1", "--save_steps", "4",
       "--save_total_limit", "null", "--seed", "3"]  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two cores shared with other test processes
    yield
    torch.set_num_threads(threads)


def train_grpo(*args: str) -> Path:
    """The script's main() in this process (the imports are paid once for the module)."""
    import scripts.train_grpo as train_grpo

    return train_grpo.main(list(args))


@pytest.fixture(scope="module")
def toy_run(tiny_llama, tmp_path_factory) -> Path:
    return train_grpo("--model_name_or_path", str(tiny_llama), "--output_dir",
                      str(tmp_path_factory.mktemp("grpo") / "toy"), *TOY)  # fmt: skip


def sampled_reward(model_dir: Path, tokenizer_dir: Path) -> float:
    """Mean rule reward of 8 completions to each of 8 prompts, sampled as the run samples (template prompt,
    temperature 1, no top-k/top-p, NEW_TOKENS at most), fixed seed."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from common.data import load_mixed, resolve_specs
    from common.rewards import answer_format_reward
    from common.templates import encode_generation_prompt, get_template, stop_token_ids

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    records = load_mixed(resolve_specs("sample_math", None, REPO / "data_dir"), REPO / "data_dir")[:8]
    template = get_template("belle")
    completions = []
    torch.manual_seed(0)
    for record in records:
        prompt = encode_generation_prompt(template, tokenizer, record["messages"][:-1])
        with torch.no_grad():
            out = model.generate(torch.tensor([prompt] * GENERATIONS), do_sample=True, top_k=0, top_p=1.0,
                                 max_new_tokens=NEW_TOKENS, pad_token_id=tokenizer.pad_token_id,
                                 eos_token_id=stop_token_ids(template, tokenizer))  # fmt: skip
        completions += tokenizer.batch_decode(out[:, len(prompt) :], skip_special_tokens=True)
    return sum(answer_format_reward(PATTERN)(completions)) / len(completions)


def test_grpo_raises_the_rule_reward_of_samples_from_the_saved_policy(toy_run, tiny_llama):
    before = sampled_reward(tiny_llama, tiny_llama)
    after = sampled_reward(toy_run, toy_run)
    print(f"GRPO toy: mean reward of 64 samples {before:.3f} -> {after:.3f}")
    assert 0.1 < before < 0.6, before  # the task is learnable from the start: groups are mixed
    assert after > before + 0.35, (before, after)


def test_trained_advantages_are_group_normalised_rewards(toy_run):
    """Each rollout's advantages, as TRL computed them, are common.rlhf.group_advantages of its rewards."""
    from common.rlhf import group_advantages

    rollouts = [json.loads(line) for line in (toy_run / "grpo_rollouts.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rollouts] == list(range(STEPS))
    mixed = 0
    for rollout in rollouts:
        rewards = torch.tensor(rollout["rewards"]["answer_format"])
        assert len(rewards) == 16 and set(rewards.tolist()) <= {0.0, 1.0}
        expected = group_advantages(rewards, GENERATIONS)
        assert rollout["advantages"] == pytest.approx(expected.tolist(), abs=1e-5)
        mixed += int((rewards.view(-1, GENERATIONS).std(dim=1) > 0).sum())
    assert mixed >= 4  # groups with a real signal, so the comparison is not all zeros


def test_log_has_reward_per_function_length_and_clipping(toy_run):
    log = [json.loads(line) for line in (toy_run / "grpo_log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == list(range(1, STEPS + 1))
    for key in ("rewards/answer_format/mean", "reward", "completions/mean_length", "clip_ratio/region_mean"):
        assert all(key in entry for entry in log), key
    assert all(0 < entry["completions/mean_length"] <= NEW_TOKENS for entry in log)
    assert json.loads((toy_run / "grpo_config.json").read_text())["reward_funcs"] == ["answer_format"]


def test_resume_equals_the_uninterrupted_run(toy_run, tiny_llama, tmp_path, monkeypatch):
    resumed = tmp_path / "resumed"
    shutil.copytree(toy_run, resumed)
    for leftover in ("model.safetensors", "train_results.json", "all_results.json", "trainer_state.json"):
        (resumed / leftover).unlink()
    shutil.rmtree(resumed / f"checkpoint-{STEPS}")  # the run "died" after checkpoint-4
    resumed_from = checkpoints_resumed(monkeypatch)
    train_grpo("--model_name_or_path", str(tiny_llama), "--output_dir", str(resumed), *TOY,
               "--resume_from_checkpoint", "true")  # fmt: skip
    assert resumed_from == [resumed / "checkpoint-4"]
    logged = [json.loads(line)["step"] for line in (resumed / "grpo_log.jsonl").read_text().splitlines()]
    assert logged == [*range(1, STEPS + 1), 5, 6]  # the resumed session ran only the steps after 4
    straight = load_file(str(toy_run / "model.safetensors"))
    again = load_file(str(resumed / "model.safetensors"))
    assert straight.keys() == again.keys()
    assert [name for name in straight if not torch.equal(straight[name], again[name])] == []
    start = load_file(str(tiny_llama / "model.safetensors"))
    assert not torch.equal(start["lm_head.weight"], straight["lm_head.weight"])  # the run did train


def checkpoints_resumed(monkeypatch) -> list:
    """The checkpoint each run in this test resumes from (None: a fresh start), as prepare_run_dir resolved it."""
    import common.runs

    seen, resolve = [], common.runs.prepare_run_dir

    def spy(config):
        output_dir, checkpoint = resolve(config)
        seen.append(checkpoint)
        return output_dir, checkpoint

    monkeypatch.setattr(common.runs, "prepare_run_dir", spy)
    return seen


def test_bad_settings_are_one_line(tmp_path):
    result = run_script(PYTHON, "scripts/train_grpo.py", "--reward_funcs", "exact_answer,no_such_rule",
                        "--output_dir", str(tmp_path / "a"), check=False)  # fmt: skip
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "no_such_rule" in line and "length_penalty" in line
    result = run_script(PYTHON, "scripts/train_grpo.py", "--reward_funcs", "reward_model",
                        "--output_dir", str(tmp_path / "b"), check=False)  # fmt: skip
    assert "reward_model folder" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_shipped_configs_parse():
    """run_config/grpo_config.json and its tiny twin resolve with no unknown key; the weights are numbers."""
    from common.config import RUN_CONFIG_FILES, parse_config
    from scripts.train_grpo import GRPOStageConfig

    for path in (REPO / "run_config/grpo_config.json", REPO / "run_config/tiny/grpo_config.json"):
        config = parse_config(
            GRPOStageConfig, ["--model_config_file", str(path)], config_file_flags=RUN_CONFIG_FILES
        )
        shipped = json.loads(path.read_text())
        assert (
            config.output_dir == shipped["output_dir"] and config.reward_weights == shipped["reward_weights"]
        )


def test_rule_rewards_by_hand():
    from common.rewards import DEFAULT_ANSWER_PATTERN, build_rule_rewards

    exact, layout, length = build_rule_rewards(["exact_answer", "answer_format", "length_penalty"],
                                               DEFAULT_ANSWER_PATTERN, max_new_tokens=8)  # fmt: skip
    completions = [
        "12 + 5 = 17.\nThe answer is 17.",  # the layout, the right number
        "The answer is 1,000",  # numbers compare by value: 1,000 = 1000
        "I think 16, no, 18",  # no layout: the last number is the answer (wrong here)
        "The answer is 17. Done.",  # not the layout (it must end the completion), but the last number is right
        "no number at all",
    ]
    answers = ["17", "1000.0", "17", "17", "17"]
    assert exact(completions=completions, answer=answers) == [1.0, 1.0, 0.0, 1.0, 0.0]
    assert layout(completions=completions) == [1.0, 1.0, 0.0, 0.0, 0.0]
    assert length(completion_ids=[[1, 2], [], list(range(8))]) == [-0.25, 0.0, -1.0]
    with pytest.raises(ValueError, match="length_penalty"):
        build_rule_rewards(["exact_answers"], DEFAULT_ANSWER_PATTERN, 8)
