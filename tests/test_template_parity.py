"""Llama 3 and Qwen on their real tiktoken vocabularies: exact ids and labels against llama-models' ChatFormat
and against Qwen2.5's chat format (a Jinja fixture written from the model card, tokenised by tiktoken itself);
tool calls; Qwen3's think blocks; and `python -m common.templates check`, the parity check users run."""

from __future__ import annotations

import functools
import json

import pytest
from test_template_real import (
    CASES,
    FIXTURES,
    HUMAN_ASSISTANT,
    LLAMA3_PATTERN,
    LLAMA3_SPECIALS,
    QWEN_PATTERN,
    QWEN_SPECIALS,
    check,
    human_assistant_reference,
    labels_of,
    package_file,
    tiktoken_tokenizer,
)

from common.templates import (
    chat_template_mismatch,
    encode_conversation,
    encode_generation_prompt,
    get_template,
    main,
    to_chat_messages,
)

LLAMA3_JINJA = (FIXTURES / "llama3.jinja").read_text()
QWEN25_JINJA = (FIXTURES / "qwen2_5.jinja").read_text()
QWEN25_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."


@pytest.fixture(scope="module")
def llama3_tok():
    tokenizer = tiktoken_tokenizer(package_file("llama_models", "llama3/tokenizer.model"), LLAMA3_PATTERN,
                                   LLAMA3_SPECIALS, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>")  # fmt: skip
    tokenizer.chat_template = LLAMA3_JINJA
    return tokenizer


@pytest.fixture(scope="module")
def qwen_tok():
    tokenizer = tiktoken_tokenizer(package_file("dashscope", "resources/qwen.tiktoken"), QWEN_PATTERN, QWEN_SPECIALS,
                                   eos_token="<|im_end|>", pad_token="<|endoftext|>")  # fmt: skip
    tokenizer.chat_template = QWEN25_JINJA
    return tokenizer


@pytest.fixture(scope="module")
def qwen_tiktoken():
    """The independent reference for Qwen text: tiktoken itself over the same ranks."""
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    ranks = load_tiktoken_bpe(str(package_file("dashscope", "resources/qwen.tiktoken")))
    specials = {token: len(ranks) + i for i, token in enumerate(QWEN_SPECIALS)}
    encoding = tiktoken.Encoding("qwen", pat_str=QWEN_PATTERN, mergeable_ranks=ranks, special_tokens=specials)
    return lambda text: encoding.encode(text, allowed_special="all")


# ---- Llama 3: llama-models' ChatFormat is the reference ---------------------------------------------


@functools.cache
def llama_models_formatter():
    from llama_models.llama3.chat_format import ChatFormat
    from llama_models.llama3.tokenizer import Tokenizer

    return ChatFormat(Tokenizer(package_file("llama_models", "llama3/tokenizer.model")))


def llama_models_reference(system, messages) -> tuple[list[int], list[list[int]]]:
    from llama_models.datatypes import RawMessage, ToolPromptFormat

    formatter = llama_models_formatter()
    header = formatter._encode_header("assistant")
    ids, spans = [formatter.tokenizer.bos_id], []
    for message in ([{"role": "system", "content": system}] if system else []) + messages:
        tokens, _ = formatter.encode_message(RawMessage(**message), ToolPromptFormat.json)
        ids += tokens
        if message["role"] == "assistant":
            assert tokens[: len(header)] == header
            spans.append(tokens[len(header) :])
    return ids, spans


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_llama3_is_llama_models_chat_format(case, llama3_tok):
    _, system, messages = case
    ids, spans = llama_models_reference(system, messages)
    example = encode_conversation(get_template("llama3"), llama3_tok, messages, system, cutoff_len=4096)
    check(example, ids, labels_of(ids, spans), llama3_tok)
    # --template tokenizer on the Llama 3 chat template trains the same tokens
    assert encode_conversation("tokenizer", llama3_tok, messages, system, cutoff_len=4096) == example


# ---- Qwen2.5: the chat format rendered by Jinja and tokenised by tiktoken ----------------------------


def qwen_reference(tokenizer, encode, system, messages, tools=None) -> list[int]:
    """The official text (the chat format fixture) tokenised whole by tiktoken: independent of our pieces."""
    text = tokenizer.apply_chat_template(
        to_chat_messages(messages, system or None), tools=tools, tokenize=False
    )
    return encode(text)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_qwen_is_the_qwen25_chat_format(case, qwen_tok, qwen_tiktoken):
    _, system, messages = case
    ids = qwen_reference(qwen_tok, qwen_tiktoken, system, messages)
    spans = [qwen_tiktoken(m["content"] + "<|im_end|>") for m in messages if m["role"] == "assistant"]
    example = encode_conversation(get_template("qwen"), qwen_tok, messages, system, cutoff_len=4096)
    check(example, ids, labels_of(ids, spans), qwen_tok)
    assert qwen_tok.decode(ids).endswith("<|im_end|>\n")  # the newline after the last <|im_end|> is there
    if not system:  # Qwen2.5's own default system prompt, also for an empty one
        assert qwen_tok.decode(ids).startswith(f"<|im_start|>system\n{QWEN25_SYSTEM}<|im_end|>\n")
    assert encode_conversation("tokenizer", qwen_tok, messages, system, cutoff_len=4096) == example


# ---- "Assistant: " + answer (belle, xverse, default) on byte-level BPE ---------------------------------

DIGIT_CASE = ("digit", None, [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}])


@pytest.mark.parametrize("vocab", ["llama3", "qwen"])
@pytest.mark.parametrize("name", sorted(HUMAN_ASSISTANT))
@pytest.mark.parametrize("case", [*CASES, DIGIT_CASE], ids=[c[0] for c in [*CASES, DIGIT_CASE]])
def test_human_assistant_is_the_whole_text_on_byte_level_bpe(
    case, name, vocab, llama3_tok, qwen_tok, qwen_tiktoken
):
    """On tiktoken vocabularies the space after `Assistant:` is glued to a word (` Hello`, ` 当`) and stands
    alone before a digit (both pre-tokenizers keep digits to themselves); either way the ids are the whole
    text's and the space is trained with the answer, since generation starts right after `Assistant:`."""
    _, system, messages = case
    if vocab == "llama3":
        tokenizer = llama3_tok
        encode = functools.partial(
            llama_models_formatter().tokenizer.encode, bos=False, eos=False, allowed_special="all"
        )
    else:
        tokenizer, encode = qwen_tok, qwen_tiktoken
    ids, spans = human_assistant_reference(name, encode, tokenizer.eos_token_id, system, messages)
    example = encode_conversation(get_template(name), tokenizer, messages, system, cutoff_len=4096)
    check(example, ids, labels_of(ids, spans), tokenizer)
    whole = tokenizer.decode(ids)
    assert encode(whole) == ids and "Assistant: " in whole  # one text, tokenised at once
    first = tokenizer.decode(spans[0][:1])
    assert first.startswith(" ") and (first == " ") == (case is DIGIT_CASE)


WEATHER = {
    "name": "get_weather",
    "description": "当前天气 / current weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
TOOL_TURNS = [
    {"role": "user", "content": "北京天气怎么样？"},
    {"role": "function_call", "content": json.dumps({"name": "get_weather", "arguments": {"city": "北京"}})},
    {"role": "observation", "content": '{"temperature": 21, "sky": "晴"}'},
    {"role": "assistant", "content": "北京现在晴，21 °C。"},
]


@pytest.mark.parametrize("template_name", ["qwen", "tokenizer"])
def test_tool_call_conversation_is_exact(template_name, qwen_tok, qwen_tiktoken):
    """The call is trained like an answer, the tool's result never; the tool list sits in the system block."""
    tools = json.dumps([WEATHER], ensure_ascii=False)  # as the data loader hands it over: a JSON string
    wrapped = [{"type": "function", "function": WEATHER}]
    ids = qwen_reference(qwen_tok, qwen_tiktoken, None, TOOL_TURNS, tools=wrapped)
    call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "北京"}}\n</tool_call><|im_end|>'
    spans = [qwen_tiktoken(call), qwen_tiktoken("北京现在晴，21 °C。<|im_end|>")]
    example = encode_conversation(get_template(template_name), qwen_tok, TOOL_TURNS, None, 4096, tools=tools)
    check(example, ids, labels_of(ids, spans), qwen_tok)
    text = qwen_tok.decode(ids)
    assert text.startswith(f"<|im_start|>system\n{QWEN25_SYSTEM}\n\n# Tools\n\n")
    assert "<|im_start|>user\n<tool_response>\n" in text
    trained = qwen_tok.decode([t for t in example["labels"] if t != -100])
    assert "temperature" not in trained  # the observation is never trained


def test_templates_without_a_tool_format_refuse_tool_calls(qwen_tok):
    from common.templates import TemplateError

    with pytest.raises(TemplateError, match="template 'llama3' has no tool-call format.*qwen"):
        encode_conversation(
            get_template("llama3"), qwen_tok, TOOL_TURNS, None, 4096, tools=json.dumps([WEATHER])
        )
    with pytest.raises(TemplateError, match="template 'chatml' has no tool-call format"):
        encode_conversation(get_template("chatml"), qwen_tok, TOOL_TURNS, None, 4096)
    with pytest.raises(
        TemplateError, match="turn 1 is 'observation', expected 'assistant' or 'function_call'"
    ):
        encode_conversation(get_template("qwen"), qwen_tok, [TOOL_TURNS[0], TOOL_TURNS[2]], None, 4096)


# ---- Qwen3: think blocks and enable_thinking ---------------------------------------------------------

THINKING = [
    {"role": "user", "content": "1+1?"},
    {"role": "assistant", "content": "<think>\nOne plus one.\n</think>\n\n2"},
    {"role": "user", "content": "2+2?"},
    {"role": "assistant", "content": "<think>\nTwo plus two.\n</think>\n\n4"},
]


def test_qwen3_trains_the_final_think_block_and_drops_earlier_reasoning(qwen_tok, qwen_tiktoken):
    """Qwen3's chat template shows earlier answers without their reasoning; the last answer keeps its think
    block, which is trained with the answer (it is what the model generates)."""
    first = "<|im_start|>user\n1+1?<|im_end|>\n<|im_start|>assistant\n"
    second = "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n"
    answers = ["2<|im_end|>", "<think>\nTwo plus two.\n</think>\n\n4<|im_end|>"]
    text = first + answers[0] + "\n" + second + answers[1] + "\n"
    ids = qwen_tiktoken(text)
    example = encode_conversation(get_template("qwen3"), qwen_tok, THINKING, None, 4096)
    check(example, ids, labels_of(ids, [qwen_tiktoken(a) for a in answers]), qwen_tok)
    # an answer without reasoning ends the conversation with an empty think block, trained too
    plain = encode_conversation(
        get_template("qwen3"), qwen_tok, THINKING[:1] + [{"role": "assistant", "content": "2"}]
    )
    assert plain["input_ids"] == qwen_tiktoken(first + "<think>\n\n</think>\n\n2<|im_end|>\n")


def test_qwen3_enable_thinking_changes_only_the_generation_prompt(qwen_tok, qwen_tiktoken):
    template = get_template("qwen3")
    thinking = encode_generation_prompt(template, qwen_tok, THINKING[:3])
    direct = encode_generation_prompt(template, qwen_tok, THINKING[:3], enable_thinking=False)
    history = "<|im_start|>user\n1+1?<|im_end|>\n<|im_start|>assistant\n2<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n"
    assert thinking == qwen_tiktoken(history + "<|im_start|>assistant\n")
    assert direct == qwen_tiktoken(history + "<|im_start|>assistant\n<think>\n\n</think>\n\n")
    # qwen3_nothink (Qwen3 instruct 2507) has no think handling at all: reasoning text stays as written
    nothink = encode_conversation(get_template("qwen3_nothink"), qwen_tok, THINKING[:2], None, 4096)
    assert qwen_tok.decode(nothink["input_ids"]).endswith(
        "assistant\n<think>\nOne plus one.\n</think>\n\n2<|im_end|>\n"
    )


# ---- the parity check -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved(llama3_tok, qwen_tok, tmp_path_factory):
    """Both tokenizers with their chat templates, saved as a user's model folder holds them."""
    root = tmp_path_factory.mktemp("chat-models")
    for name, tokenizer in (("llama3", llama3_tok), ("qwen2.5", qwen_tok)):
        tokenizer.save_pretrained(root / name)
    return root


@pytest.mark.parametrize(("model", "template"), [("llama3", "llama3"), ("qwen2.5", "qwen")])
def test_check_reports_identical(model, template, saved, capsys):
    assert main(["check", "--model", str(saved / model), "--template", template]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == "identical"
    assert "Chinese: conversation: identical" in out
    assert ("tool call: conversation: identical" in out) == (template == "qwen")


def test_check_names_the_first_difference(saved, qwen_tok, qwen_tiktoken, capsys):
    """chatml (Qwen1.5/2's default system prompt) on a Qwen2.5 tokenizer parts at the default system prompt."""
    assert main(["check", "--model", str(saved / "qwen2.5"), "--template", "chatml"]) == 1
    out = capsys.readouterr().out
    position = len(qwen_tiktoken("<|im_start|>system\nYou are"))
    ours, theirs = qwen_tiktoken(" a")[0], qwen_tiktoken(" Qwen")[0]
    assert f"single turn, no system: conversation: first difference at token {position}: ours {ours} " in out
    assert f"| chat_template {theirs} " in out
    assert "Chinese: conversation: identical" in out  # with a system prompt the two agree
    assert out.splitlines()[-1].endswith("checks differ")
    message = chat_template_mismatch(qwen_tok, "chatml")
    assert message.startswith("--template chatml differs from the tokenizer's chat_template (single turn")
    assert chat_template_mismatch(qwen_tok, "qwen") is None
    assert chat_template_mismatch(qwen_tok, "tokenizer") is None


def test_llama3_on_qwen_is_a_difference_from_the_first_token(llama3_tok):
    assert chat_template_mismatch(llama3_tok, "llama3") is None
    assert "first difference at token 0" in chat_template_mismatch(llama3_tok, "qwen")
