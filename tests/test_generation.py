"""common/generation.py: the engine's answers equal plain static-batch generate() (fp32, CPU), rows joining and
leaving the running batch change nothing, seeds are per request, stop strings and streaming are exact."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from common.generation import EngineOverloaded, GenerationError, SamplingParams, load_engine
from common.templates import encode_generation_prompt, get_template

QUESTIONS = [
    "what is 1+1?",
    "第12个问题, please answer with a short sentence and a few more words",
    "hi",
    "第3个问题 what is 3+3? Explain the steps one by one, then give the answer.",
    "what is 5+5?",
    "a",
    "tell me a story about a cat",
]


def static_batch_generate(
    engine, prompts: list[list[int]], max_new_tokens: int, batch_size: int
) -> list[list[int]]:
    """The old way (scripts/generate.py before the engine): left-padded batches in file order, one
    generate() call each, everything from the first stop token on removed."""
    tokenizer, out = engine.tokenizer, []
    for start in range(0, len(prompts), batch_size):
        batch = tokenizer.pad(
            {"input_ids": prompts[start : start + batch_size]}, padding=True, return_tensors="pt"
        )
        with torch.inference_mode():
            rows = engine.model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                         eos_token_id=engine.stop_ids, pad_token_id=tokenizer.pad_token_id)  # fmt: skip
        for row in rows[:, batch["input_ids"].shape[1] :].tolist():
            end = next((i for i, t in enumerate(row) if t in engine.stop_ids), len(row))
            out.append(row[:end])
    return out


def fp32_model_and_tokenizer(path: Path) -> tuple:
    """A tiny model in fp32 (eval mode) and its left-padding tokenizer, for engines built directly."""
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(path, padding_side="left")


def answer_ids(completion) -> list[int]:
    return completion.token_ids[:-1] if completion.finish_reason == "stop" else completion.token_ids


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The tiny model gains nothing from two threads, and spinning threads stall a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", params=["dynamic", "static"])
def engine(tiny_llama: Path, request):
    """Both ways of decoding: the growing batch and cache, and the fixed batch over a static cache (what a GPU
    runs as one compiled CUDA-graph step; here eager, with 8-column steps so that columns run out and rows
    move)."""
    engine = load_engine(str(tiny_llama), template="belle", max_batch_size=3, decode=request.param)
    engine.static_columns_unit = 8
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def prompts(engine) -> list[list[int]]:
    return [engine.encode([{"role": "user", "content": q}]) for q in QUESTIONS]


def test_prompts_are_the_training_renderer_ids(engine) -> None:
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                {"role": "user", "content": "2+2?"}]  # fmt: skip
    assert engine.encode(messages, "Be brief.") == encode_generation_prompt(
        get_template("belle"), engine.tokenizer, messages, "Be brief."
    )


def test_greedy_equals_old_static_batches(engine, prompts) -> None:
    new = engine.generate(prompts, SamplingParams(max_tokens=8))
    old = static_batch_generate(engine, prompts, max_new_tokens=8, batch_size=4)
    assert len({len(p) for p in prompts}) > 3 and any(c.finish_reason == "length" for c in new)
    assert [answer_ids(c) for c in new] == old
    assert all(c.prompt_ids == p for c, p in zip(new, prompts, strict=True))  # the caller's order


def test_rows_joining_and_leaving_change_nothing(engine, prompts) -> None:
    """Different max_tokens per request: rows finish at different steps and newcomers join a batch whose
    cache is wider or narrower than theirs; each answer still equals that prompt generated alone."""
    limits = [2 + (5 * i) % 9 for i in range(len(prompts))]
    batched = engine.generate(prompts, [SamplingParams(max_tokens=n) for n in limits])
    for prompt, limit, completion in zip(prompts, limits, batched, strict=True):
        assert answer_ids(completion) == static_batch_generate(engine, [prompt], limit, 1)[0]
        assert len(completion.token_ids) <= limit


def test_static_batch_moves_rows_and_still_matches_dynamic_greedy(tiny_llama: Path, prompts, monkeypatch) -> None:
    """The static batch's columns run out (rows move left) and, while serving, a newcomer wider than the
    current column moves every row right: each answer still equals the growing batch's."""
    from common.generation import _StaticSlots

    shifts: list[int] = []
    original_shift = _StaticSlots.shift
    monkeypatch.setattr(_StaticSlots, "shift", lambda self, delta: (shifts.append(delta), original_shift(self, delta)))
    dynamic = load_engine(str(tiny_llama), template="belle", max_batch_size=2, decode="dynamic")
    static = load_engine(str(tiny_llama), template="belle", max_batch_size=2, decode="static")
    static.static_columns_unit = 8
    limits = [3 + (7 * i) % 11 for i in range(len(prompts))]
    params = [SamplingParams(max_tokens=n) for n in limits]
    expected = [answer_ids(c) for c in dynamic.generate(prompts, params)]
    shortest = min(prompts, key=len)
    static.generate([shortest], SamplingParams(max_tokens=1))  # a small static batch first: resized, not a limit
    assert static._slots.length < max(len(p) for p in prompts)
    assert [answer_ids(c) for c in static.generate(prompts, params)] == expected
    assert any(delta < 0 for delta in shifts)  # columns ran out: rows moved left
    shifts.clear()
    static.serve_length = 48
    static.start()
    try:
        short = min(range(len(prompts)), key=lambda i: len(prompts[i]))
        long = max(range(len(prompts)), key=lambda i: len(prompts[i]))
        first = static.submit(prompts[short], SamplingParams(max_tokens=30))
        events = first.events()
        assert next(events)[0] == "delta"  # the short one is decoding: its column is below the long prompt's
        second = static.submit(prompts[long], SamplingParams(max_tokens=6))
        *_, (_, done_long) = second.events()
        *_, (_, done_short) = events
    finally:
        static.close()
    alone = dynamic.generate([prompts[short], prompts[long]], [SamplingParams(max_tokens=30), SamplingParams(max_tokens=6)])
    assert any(delta > 0 for delta in shifts)  # the long newcomer moved the short row right
    assert answer_ids(done_short) == answer_ids(alone[0])
    assert answer_ids(done_long) == answer_ids(alone[1])


@pytest.mark.parametrize(
    "arch", ["tiny-bloom", "tiny-deepseek_v3", "tiny-falcon", "tiny-glm4", "tiny-mistral", "tiny-qwen2", "tiny-qwen3"]
)
def test_static_batch_equals_the_growing_one_for_every_family_it_serves(tiny_models: Path, arch: str) -> None:
    """Every family here that decodes with the static batch on a GPU (ALiBi, multi-query, MLA's unequal key and
    value widths, partial rotary...) gives the growing batch's greedy answers, rows moving included."""
    from common.generation import HFEngine

    model, tokenizer = fp32_model_and_tokenizer(tiny_models / arch)
    generator = torch.Generator().manual_seed(0)
    vocab = min(model.config.vocab_size, len(tokenizer))
    prompts = [torch.randint(3, vocab, (n,), generator=generator).tolist() for n in (5, 17, 9, 30, 2, 12)]
    params = [SamplingParams(max_tokens=n) for n in (7, 3, 12, 5, 9, 4)]
    answers = {}
    for decode in ("dynamic", "static"):
        engine = HFEngine(model, tokenizer, None, [], max_batch_size=2, decode=decode)
        engine.static_columns_unit = 8
        answers[decode] = [c.token_ids for c in engine.generate(prompts, params)]
    assert answers["static"] == answers["dynamic"]
    assert [len(a) for a in answers["static"]] == [p.max_tokens for p in params]


def test_compiled_static_step_equals_the_growing_batch(tiny_models: Path) -> None:
    """The decode step as a GPU runs it, compiled by torch.compile (here inductor's CPU code, without CUDA
    graphs): greedy answers equal the growing batch's in fp32, rows moving included. (In bf16 a few of the
    tiny random model's near-tied argmaxes flip between compiled and eager kernels, as on a GPU.)"""
    from common.generation import HFEngine

    model, tokenizer = fp32_model_and_tokenizer(tiny_models / "tiny-qwen2")
    generator = torch.Generator().manual_seed(1)
    prompts = [torch.randint(3, 1000, (n,), generator=generator).tolist() for n in (5, 17, 9, 30, 2)]
    params = [SamplingParams(max_tokens=n) for n in (7, 3, 12, 5, 9)]
    expected = [c.token_ids for c in HFEngine(model, tokenizer, None, [], max_batch_size=2,
                                              decode="dynamic").generate(prompts, params)]  # fmt: skip
    engine = HFEngine(model, tokenizer, None, [], max_batch_size=2, decode="static")
    engine.static_columns_unit, engine.compile_decode = 8, True
    assert [c.token_ids for c in engine.generate(prompts, params)] == expected
    assert engine._slots.decode is not engine._slots._decode  # it ran compiled, without falling back


def test_longest_row_sizes_the_static_batch_once(tiny_llama: Path) -> None:
    """PPO knows its longest row (max_prompt_len + max_new_tokens): the static batch is made for it at the first
    call and serves a later, longer prompt as it is, where an engine without it makes a larger one (on a GPU,
    one more compilation). Answers stay the growing batch's."""
    from common import generation
    from common.generation import HFEngine

    model, tokenizer = fp32_model_and_tokenizer(tiny_llama)
    short, long = [[5, 6, 7], [8, 9]], [list(range(5, 25)), [10, 11]]
    params = SamplingParams(max_tokens=4)
    dynamic = HFEngine(model, tokenizer, None, [], max_batch_size=2, decode="dynamic")
    made = {}
    for longest_row in (None, 24):
        engine = HFEngine(model, tokenizer, None, [], max_batch_size=2, decode="static", longest_row=longest_row)
        engine.static_columns_unit = 8
        batches = []
        for rows in (short, long):
            assert [c.token_ids for c in engine.generate(rows, params)] == [
                c.token_ids for c in dynamic.generate(rows, params)
            ]
            batches.append(engine._slots)
        made[longest_row] = batches
        generation._STATIC_SLOTS.pop(model)  # the next engine starts without the model's batch
    first, second = made[24]
    assert first is second and first.length == 24  # 20 + 4 tokens, a multiple of 8 columns
    first, second = made[None]
    assert first is not second and (first.length, second.length) == (8, 24)


def test_static_batch_is_refused_for_sliding_window_layers(tiny_models: Path) -> None:
    """Gemma 3's sliding-window layers cannot share one column layout: decode="static" says so, "auto" keeps the
    growing batch."""
    from common.generation import HFEngine

    model, tokenizer = fp32_model_and_tokenizer(tiny_models / "tiny-gemma3")
    with pytest.raises(GenerationError, match="cannot decode with a static cache"):
        HFEngine(model, tokenizer, None, [], decode="static")
    assert not HFEngine(model, tokenizer, None, [], decode="auto").static


def test_static_batch_under_autocast_matches_the_growing_one(tiny_llama: Path) -> None:
    """PPO samples under autocast with fp32 weights: each decode step's values come out of the projections in
    bf16, the prefill's cache in fp32; the static cache keeps the prefill's dtype, as the growing one does, and
    the answers are the growing batch's."""
    from common.generation import HFEngine

    model, tokenizer = fp32_model_and_tokenizer(tiny_llama)
    prompts = [[5, 6, 7, 8, 9], [10, 11], [12, 13, 14]]
    answers = {}
    for decode in ("dynamic", "static"):
        engine = HFEngine(model, tokenizer, None, [], max_batch_size=2, decode=decode)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            answers[decode] = [c.token_ids for c in engine.generate(prompts, SamplingParams(max_tokens=6))]
    layer = engine._slots.cache.layers[0]
    assert (layer.keys.dtype, layer.values.dtype) == (torch.float32, torch.float32)
    assert answers["static"] == answers["dynamic"]


def test_seed_gives_the_same_sample_whatever_else_is_in_the_batch(engine, prompts) -> None:
    params = [SamplingParams(max_tokens=6, temperature=1.0, top_p=0.95, seed=i) for i in range(4)]
    together = engine.generate(prompts[:4], params)
    reversed_ = engine.generate(prompts[:4][::-1], params[::-1])[::-1]
    alone = engine.generate([prompts[2]], params[2])[0]
    assert [c.token_ids for c in together] == [c.token_ids for c in reversed_]
    assert alone.token_ids == together[2].token_ids
    other_seed = engine.generate([prompts[2]], SamplingParams(max_tokens=6, temperature=1.0, seed=99))[0]
    assert other_seed.token_ids != alone.token_ids


def test_top_k_one_is_greedy(engine, prompts) -> None:
    greedy = engine.generate(prompts[:3], SamplingParams(max_tokens=6))
    sampled = engine.generate(prompts[:3], SamplingParams(max_tokens=6, temperature=1.5, top_k=1))
    assert [c.token_ids for c in sampled] == [c.token_ids for c in greedy]


def test_stop_string_cuts_the_answer_and_the_stream(engine, prompts) -> None:
    greedy = engine.generate(prompts, SamplingParams(max_tokens=12))
    prompt, full = next((p, c) for p, c in zip(prompts, greedy, strict=True) if len(c.text) >= 4)
    stop = full.text[2:4]
    cut = full.text[: full.text.index(stop)]
    completion = engine.generate([prompt], SamplingParams(max_tokens=12, stop=(stop,)))[0]
    assert completion.text == cut and completion.finish_reason == "stop"
    engine.start()
    try:
        assert "".join(engine.stream(prompt, SamplingParams(max_tokens=12, stop=(stop,)))) == cut
    finally:
        engine.close()


def test_stream_reassembles_to_the_completion(engine, prompts) -> None:
    engine.start()
    try:
        for prompt in prompts[:4]:
            pieces = list(engine.stream(prompt, SamplingParams(max_tokens=12)))
            assert "".join(pieces) == engine.generate([prompt], SamplingParams(max_tokens=12))[0].text
    finally:
        engine.close()


def test_bad_requests_and_a_full_queue(tiny_llama: Path) -> None:
    engine = load_engine(str(tiny_llama), template="belle", max_queue=1)
    with pytest.raises(GenerationError, match="top_p"):
        engine.generate([[1, 5]], SamplingParams(top_p=0))
    with pytest.raises(GenerationError, match="finite"):  # one NaN would fail every row of its batch
        engine.generate([[1, 5]], SamplingParams(repetition_penalty=float("nan")))
    with pytest.raises(GenerationError, match="seed"):
        engine.generate([[1, 5]], SamplingParams(temperature=1.0, seed=2**64))
    huge_k = engine.generate([[1, 5]], SamplingParams(max_tokens=2, temperature=1.0, top_k=10**9))[0]
    assert len(huge_k.token_ids) == 2  # top_k past the vocabulary means all of it
    with pytest.raises(GenerationError, match="context holds"):
        engine.generate([[5] * engine.context_length], SamplingParams())
    first = engine.submit([1, 5, 6], SamplingParams(max_tokens=3))  # not started: it waits in the queue
    with pytest.raises(EngineOverloaded):
        engine.submit([1, 5, 6], SamplingParams(max_tokens=3))
    engine.start()
    try:
        *_, (kind, completion) = first.events()
        assert kind == "done" and len(completion.token_ids) <= 3
    finally:
        engine.close()


def test_kv_budget_limits_the_batch_not_the_answers(engine, prompts) -> None:
    """max_batch_tokens (on a GPU: from the free memory) caps the reserved prompt + max_tokens of the batch."""
    from common.generation import HFEngine

    need = sorted(len(p) + 6 for p in prompts)
    budget = need[-1] + need[-2]  # the two longest fit together
    small = HFEngine(engine.model, engine.tokenizer, engine.template, engine.stop_ids, max_batch_size=8,
                     max_batch_tokens=budget)  # fmt: skip
    reserved, admit = [], small._admit

    def admit_and_measure(newcomers):
        admit(newcomers)
        reserved.append(sum(len(s.prompt_ids) + s.params.max_tokens for s in small._rows))

    small._admit = admit_and_measure
    limited = small.generate(prompts, SamplingParams(max_tokens=6))
    assert max(reserved) <= budget and small.peak_batch < len(prompts)
    unlimited = engine.generate(prompts, SamplingParams(max_tokens=6))
    assert [c.token_ids for c in limited] == [c.token_ids for c in unlimited]


def test_a_cancelled_request_leaves_the_batch(engine, prompts) -> None:
    """A client that goes away (api.py cancels its handle) frees its row at the next step."""
    engine.start()
    try:
        handle = engine.submit(prompts[0], SamplingParams(max_tokens=500))
        events = handle.events()
        next(e for e in events if e[0] == "delta" or e[0] == "done")
        handle.cancel()
        *_, (kind, completion) = events
        assert kind == "done" and len(completion.token_ids) < 500
        deadline = time.monotonic() + 10
        while engine.running and time.monotonic() < deadline:
            time.sleep(0.01)
        assert engine.running == 0
    finally:
        engine.close()


def test_a_failing_prompt_fails_alone(engine, prompts) -> None:
    """A prompt whose prefill fails (here an id past the vocabulary) gets an error; the batch it was to join
    goes on and its request still gets the greedy answer."""
    engine.start()
    try:
        running = engine.submit(prompts[1], SamplingParams(max_tokens=30))
        next(e for e in running.events() if e[0] == "delta")  # it is decoding
        broken = engine.submit([1, 5, 10**6], SamplingParams(max_tokens=5))
        *_, (kind, message) = broken.events()
        assert kind == "error" and "generation failed" in message
        *_, (kind, completion) = running.events()
    finally:
        engine.close()
    assert kind == "done"
    assert completion.token_ids == engine.generate([prompts[1]], SamplingParams(max_tokens=30))[0].token_ids


def test_the_space_a_template_puts_before_the_answer_is_not_answer_text(engine) -> None:
    """belle trains "Assistant:" + " answer"; byte-level BPE decodes that space with the answer's first word, and
    a chat history holding it would render two spaces next turn. The text (whole or streamed) leaves it out."""
    from common.generation import _Sequence

    ids = engine.tokenizer.encode(" and the", add_special_tokens=False)
    assert engine.tokenizer.decode(ids).startswith(" ")  # the tiny tokenizer is byte-level BPE
    whole = _Sequence([1], SamplingParams(max_tokens=8), None, 0, stream=False)
    whole.tokens = list(ids)
    assert engine._completion(whole).text == "and the"
    streamed = _Sequence([1], SamplingParams(max_tokens=8), None, 0, stream=True)
    for token in ids:
        streamed.tokens.append(token)
        engine._advance_text(streamed)
    assert streamed.text == "and the"
    # what a chat sends back next turn renders as training rendered the answer
    history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "and the"},
               {"role": "user", "content": "go on"}]  # fmt: skip
    assert "Assistant: and the" in engine.tokenizer.decode(engine.encode(history))
