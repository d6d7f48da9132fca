"""Rule rewards for GRPO (scripts/train_grpo.py), named in the run config's `reward_funcs`.

Each rule scores one completion with a number, from its text, its token ids and the record's `answer`
(math-style data: {"prompt", "answer"}). They follow TRL's reward-function call, f(prompts, completions,
completion_ids, **columns) -> one float per completion, so GRPOTrainer calls them as they are:

    exact_answer    1 when the completion's final answer equals the record's answer, else 0. The final answer
                    is group 1 of `answer_pattern` (its last match), else the last number in the completion;
                    numbers compare by value ("1,000" = "1000.0"), other answers as trimmed, case-folded text.
    answer_format   1 when the completion ends in the required layout (`answer_pattern` matches), else 0.
    length_penalty  -(completion tokens) / max_new_tokens, from 0 (empty) to -1 (cut at the limit).

`python -m common.rewards` lists them. A stage adds the reward model of scripts/train_rm.py beside them as
`reward_model` (scripts/train_grpo.py: RewardModelScore).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

DEFAULT_ANSWER_PATTERN = r"The answer is:?\s*(\S+?)\.?\s*$"  # one word or number, closing the completion
NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")

RuleReward = Callable[..., list[float]]


def normalise_answer(text: str) -> str | float:
    """A number's value (commas dropped), else the text trimmed of spaces and a final full stop, case-folded."""
    text = text.strip().rstrip(".。").strip()
    if NUMBER.fullmatch(text):
        return float(text.replace(",", ""))
    return text.casefold()


def final_answer(completion: str, pattern: re.Pattern[str]) -> str | None:
    """What the completion gives as its answer: `pattern`'s group 1 at its last match, else its last number."""
    matches = list(pattern.finditer(completion))
    if matches:
        return matches[-1].group(1)
    numbers = NUMBER.findall(completion)
    return numbers[-1] if numbers else None


def exact_answer_reward(answer_pattern: str = DEFAULT_ANSWER_PATTERN) -> RuleReward:
    pattern = re.compile(answer_pattern)

    def exact_answer(completions: list[str], answer: list[str] | None = None, **_: Any) -> list[float]:
        if answer is None:
            raise ValueError(
                "exact_answer needs an `answer` column in the data ({'prompt', 'answer'} records)"
            )
        scores = []
        for completion, reference in zip(completions, answer, strict=True):
            given = final_answer(completion, pattern)
            scores.append(
                float(given is not None and normalise_answer(given) == normalise_answer(str(reference)))
            )
        return scores

    return exact_answer


def answer_format_reward(answer_pattern: str = DEFAULT_ANSWER_PATTERN) -> RuleReward:
    pattern = re.compile(answer_pattern)

    def answer_format(completions: list[str], **_: Any) -> list[float]:
        return [float(pattern.search(completion) is not None) for completion in completions]

    return answer_format


def length_penalty_reward(max_new_tokens: int) -> RuleReward:
    def length_penalty(completion_ids: list[list[int]], **_: Any) -> list[float]:
        return [-len(ids) / max_new_tokens for ids in completion_ids]

    return length_penalty


RULES: dict[str, str] = {
    "exact_answer": "1 when the final answer equals the record's `answer` (numbers by value), else 0",
    "answer_format": "1 when the completion ends in `answer_pattern`'s layout, else 0",
    "length_penalty": "-(completion tokens) / max_new_tokens",
}


def build_rule_rewards(names: list[str], answer_pattern: str, max_new_tokens: int) -> list[RuleReward]:
    """The rule functions named in `names`, in that order (names must be keys of RULES)."""
    makers: dict[str, Callable[[], RuleReward]] = {
        "exact_answer": lambda: exact_answer_reward(answer_pattern),
        "answer_format": lambda: answer_format_reward(answer_pattern),
        "length_penalty": lambda: length_penalty_reward(max_new_tokens),
    }
    unknown = [name for name in names if name not in makers]
    if unknown:
        raise ValueError(f"unknown rule reward(s) {unknown}; known: {', '.join(makers)}")
    return [makers[name]() for name in names]


if __name__ == "__main__":
    for rule, text in RULES.items():
        print(f"{rule:16} {text}")
