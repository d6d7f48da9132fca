"""scripts/chat.py driven through a pseudo-terminal as a person would: two turns (the second answered with the
first in its prompt), `clear` forgets them, `exit` quits."""

from __future__ import annotations

import os
from pathlib import Path

import pexpect
import torch

from conftest import PYTHON, REPO

MAX_TOKENS = 8


def answer(chat: pexpect.spawn, message: str) -> str:
    """Send one line, return the streamed answer as the terminal shows it."""
    chat.sendline(message)
    chat.expect_exact("Assistant: ")
    chat.expect_exact("\r\nUser: ")
    return chat.before.replace("\r\n", "\n")


def test_two_turns_history_and_clear(tiny_llama: Path) -> None:
    from common.generation import SamplingParams, load_engine

    chat = pexpect.spawn(PYTHON, ["scripts/chat.py", "--model_name_or_path", str(tiny_llama), "--template", "belle",
                                  "--temperature", "0", "--max_tokens", str(MAX_TOKENS)],
                         cwd=REPO, env={**os.environ, "TERM": "dumb", "OMP_NUM_THREADS": "1"}, encoding="utf-8", timeout=120)  # fmt: skip
    try:
        chat.expect_exact("User: ")
        first = answer(chat, "why?")
        second = answer(chat, "hi")
        chat.sendline("clear")
        chat.expect_exact("(conversation cleared)")
        chat.expect_exact("User: ")
        after_clear = answer(chat, "hi")
        chat.sendline("exit")
        chat.expect(pexpect.EOF)
    finally:
        chat.close()
    assert chat.exitstatus == 0

    engine = load_engine(str(tiny_llama), template="belle")  # what the answers must be, computed here
    greedy = SamplingParams(max_tokens=MAX_TOKENS)
    u1, u2 = {"role": "user", "content": "why?"}, {"role": "user", "content": "hi"}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the tiny model gains nothing from two threads on a busy 2-core machine
    try:
        assert first == engine.chat([u1], params=greedy).text
        assert second == engine.chat([u1, {"role": "assistant", "content": first}, u2], params=greedy).text
        assert after_clear == engine.chat([u2], params=greedy).text
    finally:
        torch.set_num_threads(threads)
    assert after_clear != second and first and second, "the history changed the second answer"
