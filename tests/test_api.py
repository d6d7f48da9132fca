"""scripts/api.py through the official `openai` client against a real server on 127.0.0.1: completions, streaming,
models, the API key, OpenAI-style 400s, training's prompt ids, and 32 concurrent requests batched together."""

from __future__ import annotations

import concurrent.futures
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from conftest import PYTHON, REPO

KEY = "test-key"
MODEL = "tiny-llama"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(script: str, *args: str, env: dict | None = None) -> tuple[subprocess.Popen, str]:
    """Launch `script` on a free port as a user would; (process, base URL) once /health answers."""
    port = free_port()
    # One thread: the tiny model gains nothing from two, and spinning threads stall a busy 2-core machine.
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    process = subprocess.Popen([PYTHON, script, "--port", str(port), *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{script} exited {process.returncode}:\n{process.stdout.read()[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.3)
    process.kill()
    raise AssertionError(f"{script} did not answer within 180 s")


def stop_server(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="module")
def server(tiny_llama: Path) -> Iterator[str]:
    process, url = start_server("scripts/api.py", "--model_name_or_path", str(tiny_llama), "--template", "belle",
                                "--max_batch_size", "16", env={"API_KEY": KEY})  # fmt: skip
    yield url
    stop_server(process)


@pytest.fixture(scope="module")
def client(server: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server}/v1", api_key=KEY, max_retries=0, timeout=120)


MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "what is 1+1?"},
    {"role": "assistant", "content": "答案是 2"},
    {"role": "user", "content": "and 2+2? 第二个问题"},
]


def test_completion_uses_the_training_prompt_ids(client: openai.OpenAI, tiny_llama: Path) -> None:
    from common.modeling import load_tokenizer
    from common.templates import encode_generation_prompt, get_template

    answer = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=8, temperature=0,
                                            extra_body={"return_token_ids": True})  # fmt: skip
    tokenizer = load_tokenizer(str(tiny_llama))
    expected = encode_generation_prompt(get_template("belle"), tokenizer, MESSAGES[1:], "Be brief.")
    assert answer.prompt_token_ids == expected
    choice = answer.choices[0]
    assert choice.message.role == "assistant" and choice.finish_reason in ("stop", "length")
    token_ids = choice.model_extra["token_ids"]
    assert (
        answer.usage.prompt_tokens == len(expected) and answer.usage.completion_tokens == len(token_ids) <= 8
    )
    assert choice.message.content == tokenizer.decode(token_ids, skip_special_tokens=True)


def test_stream_reassembles_to_the_greedy_answer(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=12, temperature=0)
    chunks = list(client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=12, temperature=0,
                                                 stream=True, stream_options={"include_usage": True}))  # fmt: skip
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content and text
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1, "streamed in pieces"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == whole.choices[0].finish_reason
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_stream_ends_with_done(server: str) -> None:
    body = {"model": MODEL, "messages": MESSAGES, "max_tokens": 3, "stream": True}
    with httpx.stream("POST", f"{server}/v1/chat/completions", json=body, timeout=60,
                      headers={"Authorization": f"Bearer {KEY}"}) as response:  # fmt: skip
        lines = [line for line in response.iter_lines() if line]
    assert response.headers["content-type"].startswith("text/event-stream")
    assert lines[-1] == "data: [DONE]" and all(line.startswith("data: ") for line in lines)


def test_seed_repeats_a_sampled_answer(client: openai.OpenAI) -> None:
    def sample(seed: int) -> str:
        answer = client.chat.completions.create(model=MODEL, messages=MESSAGES[1:2], max_tokens=8, temperature=1.0,
                                                seed=seed)  # fmt: skip
        return answer.choices[0].message.content

    first = sample(7)
    assert sample(7) == first
    assert sample(8) != first


def test_models_list(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == [MODEL]


def test_wrong_or_missing_key_is_401(server: str) -> None:
    wrong = openai.OpenAI(base_url=f"{server}/v1", api_key="not-the-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=2)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()
    response = httpx.post(f"{server}/v1/chat/completions", json={"model": MODEL, "messages": MESSAGES})
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.parametrize(
    "change, message",
    [
        ({"messages": []}, "non-empty"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "role"),
        ({"messages": [{"role": "assistant", "content": "hi"}]}, "expected 'user'"),
        ({"messages": [{"role": "user", "content": "hi " * 3000}]}, "context"),
        ({"max_tokens": 5000}, "context"),
        ({"temperature": 3}, "temperature"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"seed": 2**64, "temperature": 1.0}, "seed"),  # checked before it reaches (and fails) the batch
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tool"),
    ],
)
def test_bad_requests_are_400_with_openai_errors(client: openai.OpenAI, change: dict, message: str) -> None:
    request = {"model": MODEL, "messages": MESSAGES[1:2], "max_tokens": 2, **change}
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(**request)
    assert caught.value.status_code == 400
    assert message in caught.value.body["message"] and caught.value.body["type"] == "invalid_request_error"


def test_bad_json_and_unknown_model(server: str) -> None:
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    response = httpx.post(f"{server}/v1/chat/completions", content=b'{"model": ', headers=headers)
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]["message"]
    response = httpx.post(f"{server}/v1/chat/completions", json={"model": "gpt-4", "messages": MESSAGES},
                          headers=headers)  # fmt: skip
    assert response.status_code == 404 and response.json()["error"]["code"] == "model_not_found"


def test_32_concurrent_requests_are_batched_and_independent(client: openai.OpenAI, server: str) -> None:
    questions = [(f"第{i}个问题: what is {i} + {i * 7}?" + " more" * (i % 5), 2 + i % 4) for i in range(32)]

    def ask(question: tuple[str, int]) -> str:
        text, max_tokens = question
        answer = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": text}],
                                                max_tokens=max_tokens, temperature=0)  # fmt: skip
        return answer.choices[0].message.content

    alone = [ask(q) for q in questions]  # one request at a time
    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
        together = list(pool.map(ask, questions))
    assert together == alone
    assert len(set(alone)) > 8, "different questions get different answers"
    assert httpx.get(f"{server}/health").json()["peak_batch"] > 1, "concurrent requests were decoded together"


TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "today's weather",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]  # fmt: skip


@pytest.fixture(scope="module")
def qwen_server(tiny_models: Path):
    """api.py's app in this process on the tiny Qwen2 with the `qwen` template (the one with a tool format),
    reached by the openai client through starlette's TestClient; `canned` replaces the model's answer text
    (a random tiny model never writes a tool call)."""
    import importlib.util

    import torch
    from starlette.testclient import TestClient

    from common.generation import Completion, EngineOverloaded, RequestHandle, load_engine
    from conftest import run_script

    run_script(PYTHON, "scripts/build_tiny_models.py", "--archs", "qwen2")
    spec = importlib.util.spec_from_file_location("api_script", REPO / "scripts" / "api.py")
    api = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(api)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    engine = load_engine(str(tiny_models / "tiny-qwen2"), template="qwen")
    canned: dict[str, str] = {}
    real_submit = engine.submit

    def submit(prompt_ids, params, on_event=None):
        if canned.pop("overloaded", None):
            raise EngineOverloaded("256 requests are already waiting")
        if "text" not in canned:
            return real_submit(prompt_ids, params, on_event)
        on_event(("done", Completion(prompt_ids, [7, 8], canned.pop("text"), "stop")))
        return RequestHandle(on_event)

    engine.submit = submit
    with TestClient(api.build_app(engine, "tiny-qwen2", 8, None)) as http:
        yield (
            openai.OpenAI(base_url="http://testserver/v1", api_key="unused", http_client=http, max_retries=0),
            engine,
            canned,
        )
    torch.set_num_threads(threads)


def test_tool_conversation_is_rendered_as_training_renders_it(qwen_server) -> None:
    from common.templates import encode_generation_prompt, get_template

    client, engine, _ = qwen_server
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "北京"}'},
    }
    messages = [{"role": "user", "content": "北京天气?"}, {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "call_1", "content": '{"weather": "晴"}'}]  # fmt: skip
    answer = client.chat.completions.create(model="tiny-qwen2", messages=messages, tools=TOOLS, max_tokens=4,
                                            temperature=0, extra_body={"return_token_ids": True})  # fmt: skip
    turns = [{"role": "user", "content": "北京天气?"},
             {"role": "function_call", "content": '{"name": "get_weather", "arguments": {"city": "北京"}}'},
             {"role": "observation", "content": '{"weather": "晴"}'}]  # fmt: skip
    expected = encode_generation_prompt(get_template("qwen"), engine.tokenizer, turns, None, tools=TOOLS)
    assert answer.prompt_token_ids == expected
    assert "<tool_call>" in engine.tokenizer.decode(expected) and "<tools>" in engine.tokenizer.decode(
        expected
    )


@pytest.mark.parametrize("stream", [False, True])
def test_a_tool_call_in_the_answer_comes_back_as_tool_calls(qwen_server, stream: bool) -> None:
    client, _, canned = qwen_server
    canned["text"] = (
        'Let me look.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "上海"}}\n</tool_call>'
    )
    request = {"model": "tiny-qwen2", "messages": [{"role": "user", "content": "上海天气?"}], "tools": TOOLS}
    if stream:
        chunks = list(client.chat.completions.create(**request, stream=True))
        deltas = [c.choices[0].delta for c in chunks if c.choices]
        calls = [t for d in deltas for t in d.tool_calls or []]
        content = "".join(d.content or "" for d in deltas)
        finish = [c.choices[0].finish_reason for c in chunks if c.choices][-1]
    else:
        message = (answer := client.chat.completions.create(**request)).choices[0].message
        calls, content, finish = message.tool_calls, message.content, answer.choices[0].finish_reason
    assert finish == "tool_calls" and content == "Let me look."
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("get_weather", {"city": "上海"})
    ]
    assert calls[0].id.startswith("call_")


def test_a_full_queue_is_503_with_retry_after(qwen_server) -> None:
    client, _, canned = qwen_server
    canned["overloaded"] = True
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="tiny-qwen2", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 503 and caught.value.response.headers["retry-after"] == "1"
    assert caught.value.body["code"] == "server_overloaded"


def test_extended_vocabulary_chain_is_served(tiny_llama: Path, tmp_path: Path) -> None:
    """Chinese vocabulary extension -> LoRA pre-training with trained embeddings and head -> merge -> served:
    the server's prompt and answer use the new pieces; the unmerged adapter on the base answers the same.
    (~37 s on a quiet machine: the costliest serving test, and the one LLaMA-Factory users trip over.)"""
    import torch

    from common.generation import SamplingParams, load_engine
    from conftest import run_script

    tokenizer_dir, data, pretrained, merged = (tmp_path / n for n in ("zh-tok", "text", "pt", "merged"))
    run_script(PYTHON, "scripts/merge_tokenizer.py", "--output_dir", str(tokenizer_dir))
    data.mkdir()  # one long document the model can learn in a few steps
    (data / "spring.txt").write_text(
        "春天来了，花园里的花都开了，孩子们在草地上快乐地奔跑。" * 300 + "\n", encoding="utf-8"
    )
    env = {"OMP_NUM_THREADS": "1"}
    run_script(PYTHON, "scripts/pretrain.py", "--use_lora", "--modules_to_save", "embed_tokens,lm_head",
               "--tokenizer_name_or_path", str(tokenizer_dir), "--dataset_dir", str(data), "--max_steps", "40",
               "--block_size", "64", "--learning_rate", "3e-3", "--warmup_steps", "0", "--eval_before_training",
               "false", "--max_eval_blocks", "2", "--output_dir", str(pretrained), "--data_cache_dir",
               str(tmp_path / "cache"), env=env)  # fmt: skip
    adapter = pretrained / "pt_lora_model"
    run_script(PYTHON, "scripts/merge_lora.py", "--base_model", str(tiny_llama), "--lora_model", str(adapter),
               "--output_dir", str(merged), env=env)  # fmt: skip

    process, url = start_server("scripts/api.py", "--model_name_or_path", str(merged), "--template", "belle")
    try:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=120)
        answer = client.chat.completions.create(model="merged", messages=[{"role": "user", "content": "春天来了"}],
                                                max_tokens=12, temperature=0, extra_body={"return_token_ids": True})  # fmt: skip
    finally:
        stop_server(process)
    base_vocab = 4096  # the tiny Llama's; the extension appends ids after it
    new_ids = [i for i in answer.choices[0].model_extra["token_ids"] if i >= base_vocab]
    assert any(i >= base_vocab for i in answer.prompt_token_ids), "the prompt is encoded with the new pieces"
    assert len(new_ids) >= 3, f"the answer uses the new Chinese pieces: {answer.choices[0].message.content!r}"

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:  # base + adapter: the base's embeddings grow to the adapter's vocabulary before it loads
        engine = load_engine(str(tiny_llama), adapter_name_or_path=str(adapter), template="belle")
        unmerged = engine.chat(
            [{"role": "user", "content": "春天来了"}], params=SamplingParams(max_tokens=12)
        )
    finally:
        torch.set_num_threads(threads)
    assert unmerged.text == answer.choices[0].message.content
