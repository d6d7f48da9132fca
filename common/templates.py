"""Chat templates: how a conversation becomes the exact token ids and labels a model was trained on.

A conversation is an optional system prompt, an optional tool list, and turns that alternate between the
prompt side (`user`, or `observation`: a tool's result) and the answer side (`assistant`, or
`function_call`: the assistant's tool call, its content the call as JSON). `encode_conversation` renders it
with a named template into (input_ids, labels): labels copy the ids of EVERY answer-side turn and its end
marker / eos, and are IGNORE_INDEX elsewhere (tool results are never trained).

    python -m common.templates                                   # every template on a two-turn example
    python -m common.templates check --model PATH --template qwen  # our template vs the model's own

Rules that hold for every template (tests/test_templates.py on the tiny tokenizer, with and without the
family's special tokens; tests/test_template_real.py and tests/test_template_parity.py on real tokenizers):
- The concatenated input_ids equal the official reference tokenisation: the model's own chat_template
  rendered and tokenised whole, or where the official training or inference code tokenises message by
  message (Meta's Llama 2 generation.py, mistral_common), what that code produces. Each prompt and answer
  piece is tokenised on its own (a byte-level BPE could merge across the boundary), so where a
  SentencePiece tokenizer would put its dummy-prefix space marker in front of every piece, a piece that
  continues a text is tokenised as a continuation (`encode_piece`): `[/INST] ▁Hello`, never `▁▁Hello`.
- No prompt piece ends with a space. Every tokenizer we meet glues a space to the word after it
  (SentencePiece `▁Hello`, byte-level BPE ` Hello`), so a whole-text tokenisation of "Assistant: Hello" has
  no token boundary after the space. Where the official format writes "Assistant: " + answer (`belle`,
  `default`, `xverse`, like `vicuna`, `deepseek`, `falcon`), the prompt piece ends at "Assistant:" and the
  answer piece is " " + answer: the ids are the whole text's, and the space is trained with the answer
  (it is part of the answer's first token; where a tokenizer keeps it apart, as before a digit, the model
  must still write it, since the generation prompt ends at "Assistant:"). A prompt ending in a space would
  give `▁` + `Hello` instead, a split no pre-trained model has seen.
- Empty and absent system prompts are the same: `""` (an alpaca record's `"system": ""`, a ShareGPT or
  OpenAI record's empty system turn) and `None` both give the template's default system prompt, or no
  system block when it has none, exactly as the official chat templates render a conversation without a
  system message. To train without Qwen2.5's default, choose a template that has none (`qwen3`, `yi`).
- Markers in template strings: `{bos}` is the special tokens the tokenizer itself puts in front of a text
  (LLaMA/Mistral/Gemma: `<s>`/`<bos>`; BLOOM/Qwen/Falcon: nothing), `{eos}` is its eos token.
  Model-specific special tokens (`<|im_start|>`, `<|eot_id|>`, `[gMASK]`, ...) are written as text: the real
  model's tokenizer knows them as added tokens and encodes each as ONE id; our tiny test vocab does not,
  so there they become several ordinary byte tokens (good enough to test the layout).

Tool calls: `tools` (a JSON list of function schemas) and function_call / observation turns are rendered
by the templates with a tool format (`qwen`, `qwen3`, `qwen3_nothink`: Qwen's <tools> / <tool_call> /
<tool_response>) and by `tokenizer` (the chat template's own `tools` argument); every other template
refuses them with a TemplateError that names these.

Reasoning templates (`qwen3`, `deepseekr1`) render an answer's `<think>...</think>` block the way the
official template does: answers before the last user turn lose their reasoning (the official template
drops it from the history), the answers after it keep it, and the final answer always carries a think
block (empty when the data has none), so every trained answer is what the model generates at inference.
The think block is trained like the rest of the answer. `enable_thinking=False` (qwen3 only, as in the
official template) changes only generation prompts: they end with an empty think block, so the model
answers at once.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from typing import Any

IGNORE_INDEX = -100
# {bos}/{eos} become these sentinels while rendering, so text in the data can never turn into a special id.
BOS, EOS = "\x00bos\x00", "\x00eos\x00"
_MARKER = re.compile("(\x00bos\x00|\x00eos\x00)")
PROMPT_ROLES = ("user", "observation")
ANSWER_ROLES = ("assistant", "function_call")


def _fill(fmt: str, **values: Any) -> str:
    text = fmt.replace("{bos}", BOS).replace("{eos}", EOS)
    for key, value in values.items():
        text = text.replace("{" + key + "}", str(value))
    return text


class TemplateError(ValueError):
    """A conversation or template that cannot be rendered; the message says why."""


@dataclasses.dataclass(frozen=True)
class Template:
    """One prompt format. Untrained pieces: prefix, system, turn_prefix, turn_separator, user, observation,
    suffix. Trained: assistant / function call (with its end marker) and, by `eos`, the tokenizer's eos."""

    name: str
    user: str  # "{content}"; "{idx}" is the 1-based round number (ChatGLM2)
    assistant: str  # "{content}" plus the end-of-answer marker, all trained
    system: str = "{content}\n\n"  # before the first user turn when there is a system prompt
    prefix: str = "{bos}"  # start of the conversation
    turn_prefix: str = ""  # before every user turn (Llama 2 repeats <s>)
    turn_separator: str = ""  # between an answer and the next prompt turn
    suffix: str = ""  # untrained text after the last answer (ChatML's newline after the last <|im_end|>)
    system_in_user: str | None = None  # "{system}...{content}": system folded into a user turn
    system_in_last_user: bool = False  # ... into the last user turn (Mistral v3) instead of the first
    # eos: the tokenizer's eos after "every" answer, only the "last", "none" (the marker ends it), or
    # "next_turn": the answer's stop is trained on the first token(s) of the next prompt turn, `next_stop`
    # (Baichuan: eos while the input shows the next user token; GLM: the next role token itself), and
    # `next_stop` is appended to the last answer.
    eos: str = "every"
    next_stop: str = ""
    encode_each_piece: bool = False  # the official code tokenises every message on its own (mistral_common)
    default_system: str = ""
    stop_words: tuple[str, ...] = ()
    tools: str | None = None  # name of the tool-call format ("qwen", "qwen3"), None: no tool calls
    reasoning: str | None = None  # "qwen3" or "r1": how <think> blocks are rendered (module docstring)
    trim_content: bool = False  # the official template strips each message's text (Gemma's `| trim`)
    doc: str = ""


def _t(name: str, doc: str, **kw: Any) -> Template:
    return Template(name=name, doc=doc, **kw)


# ChatML as Qwen, Yi and InternLM2 use it; each template below says which official source it follows.
_CHATML = {
    "prefix": "",
    "system": "<|im_start|>system\n{content}<|im_end|>\n",
    "user": "<|im_start|>user\n{content}<|im_end|>\n<|im_start|>assistant\n",
    "assistant": "{content}<|im_end|>",
    "turn_separator": "\n",
    "suffix": "\n",
    "eos": "none",
    "stop_words": ("<|im_end|>",),
}
_LLAMA2 = {
    "prefix": "",
    "turn_prefix": "{bos}",
    "user": "[INST] {content} [/INST]",
    "system_in_user": "<<SYS>>\n{system}\n<</SYS>>\n\n{content}",
}
_GLM = {
    "system": "<|system|>\n{content}",
    "user": "<|user|>\n{content}<|assistant|>",
    "assistant": "\n{content}",
    "eos": "next_turn",
    "next_stop": "<|user|>",
    "stop_words": ("<|user|>", "<|observation|>"),
}
_GEMMA = {
    "user": "<start_of_turn>user\n{content}<end_of_turn>\n<start_of_turn>model\n",
    "assistant": "{content}<end_of_turn>",
    "turn_separator": "\n",
    "suffix": "\n",
    "system_in_user": "{system}\n\n{content}",
    "eos": "none",
    "stop_words": ("<end_of_turn>",),
    "trim_content": True,
}
_DEEPSEEK3 = {
    "system": "{content}",
    "user": "<｜User｜>{content}<｜Assistant｜>",
    "assistant": "{content}{eos}",
}

TEMPLATES: dict[str, Template] = {
    t.name: t
    for t in [
        _t(
            "default",
            "The repo's neutral plain-text format for base models with no chat format of their own "
            "(no official source; `System:`/`Human:`/`Assistant:` lines).",
            system="System: {content}\n",
            user="Human: {content}\nAssistant:",
            assistant=" {content}{eos}",
            turn_separator="\n",
        ),  # fmt: skip
        _t(
            "alpaca",
            "Stanford Alpaca, github.com/tatsu-lab/stanford_alpaca train.py PROMPT_DICT "
            "(`### Instruction:\\n...\\n\\n### Response:`, source + target tokenised as one text, "
            "target = output + eos); turns joined by a blank line.",
            user="### Instruction:\n{content}\n\n### Response:",
            assistant="{content}{eos}",
            turn_separator="\n\n",
            default_system="Below is an instruction that describes a task. "
            "Write a response that appropriately completes the request.",
        ),  # fmt: skip
        _t(
            "vicuna",
            "Vicuna v1.1, github.com/lm-sys/FastChat fastchat/conversation.py `vicuna_v1.1` "
            "(ADD_COLON_TWO, sep ' ', sep2 '</s>'; train.py tokenises the whole conversation).",
            system="{content} ",
            user="USER: {content} ASSISTANT:",
            assistant=" {content}{eos}",
            default_system="A chat between a curious user and an artificial intelligence assistant. "
            "The assistant gives helpful, detailed, and polite answers to the user's questions.",
        ),  # fmt: skip
        _t(
            "belle",
            "BELLE, github.com/LianjiaTech/BELLE train/ (README data format and sft_train.py): "
            "`Human: {q}\\n\\nAssistant: ` + answer + eos per turn; the space after `Assistant:` opens the "
            "answer (module docstring).",
            user="Human: {content}\n\nAssistant:",
            assistant=" {content}{eos}",
        ),  # fmt: skip
        _t(
            "llama2",
            "Llama 2 chat, github.com/meta-llama/llama llama/generation.py chat_completion "
            "(B_INST/E_INST, <<SYS>> in the first user turn, each turn `[INST] q [/INST] a ` encoded as one "
            "text with bos and eos).",
            assistant=" {content} {eos}",
            **_LLAMA2,
        ),  # fmt: skip
        _t(
            "llama2_zh",
            "Chinese-LLaMA-Alpaca-2, github.com/ymcui/Chinese-LLaMA-Alpaca-2 scripts/training/build_dataset.py: "
            "Llama 2's `[INST] <<SYS>>...<</SYS>>\\n\\n{instruction} [/INST]` with its system prompt; the source "
            "(with bos) and the target `output + eos` are tokenised separately.",
            assistant="{content}{eos}",
            encode_each_piece=True,
            default_system="You are a helpful assistant. 你是一个乐于助人的助手。",
            **_LLAMA2,
        ),  # fmt: skip
        _t(
            "llama3",
            "Llama 3 instruct, meta-llama/Meta-Llama-3-8B-Instruct tokenizer_config.json chat_template "
            "and github.com/meta-llama/llama-models llama3/chat_format.py (header tokens, <|eot_id|> ends "
            "every turn).",
            prefix="<|begin_of_text|>",
            system="<|start_header_id|>system<|end_header_id|>\n\n{content}<|eot_id|>",
            user="<|start_header_id|>user<|end_header_id|>\n\n{content}<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n",
            assistant="{content}<|eot_id|>",
            eos="none",
            stop_words=("<|eot_id|>",),
        ),  # fmt: skip
        _t(
            "llama4",
            "Llama 4 instruct, github.com/meta-llama/llama-models llama4/chat_format.py and "
            "meta-llama/Llama-4-Scout-17B-16E-Instruct chat_template (<|header_start|>role<|header_end|>\\n\\n, "
            "<|eot|> ends every turn).",
            prefix="<|begin_of_text|>",
            system="<|header_start|>system<|header_end|>\n\n{content}<|eot|>",
            user="<|header_start|>user<|header_end|>\n\n{content}<|eot|>"
            "<|header_start|>assistant<|header_end|>\n\n",
            assistant="{content}<|eot|>",
            eos="none",
            stop_words=("<|eot|>",),
        ),  # fmt: skip
        _t(
            "mistral",
            "Mistral-7B-Instruct-v0.1, mistral_common InstructTokenizerV1 (each message tokenised on its own: "
            "bos once, `[INST] q [/INST]`, answer + eos; the system prompt opens the first user turn).",
            user="[INST] {content} [/INST]",
            assistant="{content}{eos}",
            system_in_user="{system}\n\n{content}",
            encode_each_piece=True,
        ),  # fmt: skip
        _t(
            "mistral_v3",
            "Mistral-7B-Instruct-v0.3 (and Mixtral-8x22B), mistral_common InstructTokenizerV3 and the model's "
            "chat_template: control tokens [INST]/[/INST], `[INST] q[/INST] a</s>`, the system prompt opens "
            "the LAST user turn.",
            user="[INST] {content}[/INST]",
            assistant=" {content}{eos}",
            system_in_user="{system}\n\n{content}",
            system_in_last_user=True,
        ),  # fmt: skip
        _t(
            "ministral",
            "Ministral-8B-Instruct-2410 / Mistral-Nemo (Tekken tokenizer), mistral_common InstructTokenizerV3 "
            "with Tekken and the model's chat_template: `[INST]q[/INST]a</s>` with no spaces, the system prompt "
            "opens the LAST user turn.",
            user="[INST]{content}[/INST]",
            assistant="{content}{eos}",
            system_in_user="{system}\n\n{content}",
            system_in_last_user=True,
        ),  # fmt: skip
        _t(
            "chatml",
            "ChatML as Qwen1.5 / Qwen2 use it, Qwen/Qwen2-7B-Instruct tokenizer_config.json chat_template "
            "(every message `<|im_start|>role\\ncontent<|im_end|>\\n`, default system prompt 'You are a "
            "helpful assistant.'). Qwen2.5 is `qwen`.",
            default_system="You are a helpful assistant.",
            **_CHATML,
        ),  # fmt: skip
        _t(
            "qwen",
            "Qwen2.5 instruct, Qwen/Qwen2.5-7B-Instruct tokenizer_config.json chat_template: ChatML, default "
            "system prompt 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.', tools in "
            "the system block, calls in <tool_call>, results in <tool_response> inside a user turn.",
            default_system="You are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
            tools="qwen",
            **_CHATML,
        ),  # fmt: skip
        _t(
            "qwen3",
            "Qwen3 (hybrid thinking), Qwen/Qwen3-8B tokenizer_config.json chat_template: ChatML with no default "
            "system prompt, Qwen's tool format, <think> blocks as the module docstring says, "
            "enable_thinking=False ends a generation prompt with an empty think block.",
            tools="qwen3",
            reasoning="qwen3",
            **_CHATML,
        ),  # fmt: skip
        _t(
            "qwen3_nothink",
            "Qwen3 instruct without thinking (Qwen/Qwen3-30B-A3B-Instruct-2507 chat_template): ChatML with no "
            "default system prompt and Qwen's tool format; <think> is not special.",
            tools="qwen3",
            **_CHATML,
        ),  # fmt: skip
        _t(
            "yi",
            "Yi chat, 01-ai/Yi-34B-Chat tokenizer_config.json chat_template: ChatML with no default system prompt.",
            **_CHATML,
        ),  # fmt: skip
        _t(
            "intern2",
            "InternLM2 / 2.5 / 3 chat, internlm/internlm2_5-7b-chat tokenizer_config.json chat_template: bos then "
            "ChatML; no default system prompt (its meta instruction lives in the modeling code's chat(), "
            "not in the template).",
            **{**_CHATML, "prefix": "{bos}"},
        ),  # fmt: skip
        _t(
            "glm4",
            "GLM-4 chat, THUDM/glm-4-9b-chat tokenizer_config.json chat_template and github.com/THUDM/GLM-4 "
            "finetune_demo/finetune.py: `[gMASK]<sop><|system|>\\n...<|user|>\\nq<|assistant|>\\na`; the labels are "
            "shifted one token, so the role token that follows an answer (<|user|>, <|observation|>) is its "
            "trained stop, and <|user|> is appended after the last answer.",
            prefix="[gMASK]<sop>",
            **_GLM,
        ),  # fmt: skip
        _t(
            "chatglm3",
            "ChatGLM3-6B, THUDM/chatglm3-6b tokenization_chatglm.py build_single_message (`<|role|>` + '\\n' + "
            "content) and finetune_demo (stop as glm4); its SentencePiece tokenizer needs trust_remote_code.",
            prefix="[gMASK]sop",
            **_GLM,
        ),  # fmt: skip
        _t(
            "deepseek",
            "DeepSeek LLM / DeepSeek-V2 chat, deepseek-ai/DeepSeek-V2-Chat tokenizer_config.json chat_template: "
            "bos, system + '\\n\\n', `User: q\\n\\nAssistant:` then ' ' + answer + eos.",
            user="User: {content}\n\nAssistant:",
            assistant=" {content}{eos}",
        ),  # fmt: skip
        _t(
            "deepseek3",
            "DeepSeek-V3, deepseek-ai/DeepSeek-V3 tokenizer_config.json chat_template: bos, system, "
            "`<｜User｜>q<｜Assistant｜>a<｜end▁of▁sentence｜>`.",
            **_DEEPSEEK3,
        ),  # fmt: skip
        _t(
            "deepseekr1",
            "DeepSeek-R1, deepseek-ai/DeepSeek-R1 tokenizer_config.json chat_template (the revision whose "
            "generation prompt is `<｜Assistant｜><think>\\n`): DeepSeek-V3's layout, earlier answers without "
            "their reasoning, the final answer = reasoning + '\\n</think>\\n\\n' + answer after that prompt.",
            reasoning="r1",
            **_DEEPSEEK3,
        ),  # fmt: skip
        _t(
            "gemma",
            "Gemma 1 / 2 instruct, google/gemma-2-9b-it tokenizer_config.json chat_template: `<start_of_turn>user"
            "\\n...<end_of_turn>\\n<start_of_turn>model\\n`, each message's text trimmed; the official template refuses a "
            "system role, so it opens the first user turn as Gemma 3 does.",
            **_GEMMA,
        ),  # fmt: skip
        _t(
            "gemma3",
            "Gemma 3 instruct, google/gemma-3-4b-it chat_template: Gemma's turns (text trimmed), the system "
            "prompt + '\\n\\n' opens the first user turn.",
            **_GEMMA,
        ),  # fmt: skip
        _t(
            "bloom",
            "BLOOMZ, bigscience/bloomz model card: plain-text prompts, no chat format (xP3 concatenates "
            "input and target, eos after the target); turns joined by newlines.",
            system="{content}\n",
            user="{content}",
            assistant=" {content}{eos}",
            turn_separator="\n",
        ),  # fmt: skip
        _t(
            "falcon",
            "Falcon chat, tiiuae/falcon-180B-chat model card / falcon-7b-instruct chat_template: "
            "`System:`, `User:`, `Falcon:` lines. We add eos after each answer so that generation stops.",
            system="System: {content}\n",
            user="User: {content}\nFalcon:",
            assistant=" {content}{eos}",
            turn_separator="\n",
            stop_words=("\nUser:",),
        ),  # fmt: skip
        _t(
            "baichuan",
            "Baichuan-13B-Chat generation_utils.py build_chat_input: user token <reserved_102> "
            "(id 195), assistant token <reserved_103> (id 196); trained as Baichuan 2's fine-tune.py "
            "trains (eos label on the next user token, eos after the last answer).",
            prefix="",
            system="{content}",
            user="<reserved_102>{content}<reserved_103>",
            assistant="{content}",
            eos="next_turn",
            next_stop="{eos}",
        ),  # fmt: skip
        _t(
            "baichuan2",
            "Baichuan2-Chat, github.com/baichuan-inc/Baichuan2 fine-tune/fine-tune.py: user "
            "<reserved_106> (id 195), assistant <reserved_107> (id 196); the label of every user token is "
            "eos (so each answer's stop is trained while the input shows the next user token) and eos "
            "ends the conversation.",
            prefix="",
            system="{content}",
            user="<reserved_106>{content}<reserved_107>",
            assistant="{content}",
            eos="next_turn",
            next_stop="{eos}",
        ),  # fmt: skip
        _t(
            "intern",
            "InternLM chat v1, internlm/internlm-chat-7b modeling_internlm.py build_inputs: "
            "`<|User|>:q<eoh>\\n<|Bot|>:a<eoa>\\n`; system as `<|System|>:...\\n` (later InternLM chats).",
            system="<|System|>:{content}\n",
            user="<|User|>:{content}<eoh>\n<|Bot|>:",
            assistant="{content}<eoa>",
            turn_separator="\n",
            eos="none",
            stop_words=("<eoa>",),
        ),  # fmt: skip
        _t(
            "xverse",
            "XVERSE-13B-Chat model card: `Human: q\\n\\nAssistant: a` + eos (<|endoftext|>); the space after "
            "`Assistant:` opens the answer, as in `belle`.",
            user="Human: {content}\n\nAssistant:",
            assistant=" {content}{eos}",
        ),  # fmt: skip
        _t(
            "chatglm2",
            "ChatGLM2-6B, THUDM/chatglm2-6b tokenization_chatglm.py build_prompt "
            "(`[Round n]\\n\\n问：q\\n\\n答：a\\n\\n`, full-width colons; its tokenizer's prefix is [gMASK]sop) "
            "and ptuning/main.py (eos after the answer).",
            user="[Round {idx}]\n\n问：{content}\n\n答：",
            assistant="{content}",
            turn_separator="\n\n",
            eos="last",
        ),  # fmt: skip
    ]
}
TEMPLATE_NAMES = [*TEMPLATES, "tokenizer"]  # "tokenizer": the tokenizer's own chat_template


def get_template(name: str) -> Template | str:
    """The named template; "tokenizer" is returned as the string (handled by apply_chat_template)."""
    if name == "tokenizer":
        return name
    if name not in TEMPLATES:
        raise TemplateError(f"unknown template {name!r}; choose one of {', '.join(TEMPLATE_NAMES)}")
    return TEMPLATES[name]


# ---- conversations, tools and reasoning ----------------------------------------------------------


def check_messages(messages: list[dict[str, str]], need_answer: bool = True) -> None:
    """Prompt-side turns (user / observation) and answer-side turns (assistant / function_call) alternate,
    starting with the user and ending with an answer (or with a prompt-side turn for generation)."""
    if not messages:
        raise TemplateError("the conversation has no turns")
    for i, message in enumerate(messages):
        allowed = ("user",) if i == 0 else PROMPT_ROLES if i % 2 == 0 else ANSWER_ROLES
        role = message.get("role")
        if role not in allowed:
            expected = " or ".join(repr(r) for r in allowed)
            raise TemplateError(f"turn {i} is {role!r}, expected {expected} (roles must alternate between the "
                                "user's side and the answer's, starting with the user)")  # fmt: skip
        if not isinstance(message.get("content"), str):
            raise TemplateError(f"turn {i} ({role}) has no text content")
    last = messages[-1]["role"]
    if need_answer and last not in ANSWER_ROLES:
        raise TemplateError("the conversation must end with an assistant answer")
    if not need_answer and last not in PROMPT_ROLES:
        raise TemplateError("a generation prompt must end with a user turn")


def parse_tools(tools: str | list | None) -> list[dict[str, Any]] | None:
    """The tool list as JSON objects in the chat-template form {"type": "function", "function": schema}
    (a bare function schema, as LLaMA-Factory's `tools` column holds, is wrapped), or None."""
    if tools is None or tools == "" or tools == []:
        return None
    if isinstance(tools, str):
        try:
            tools = json.loads(tools)
        except json.JSONDecodeError as err:
            raise TemplateError(f"'tools' is not valid JSON ({err})") from None
    if isinstance(tools, dict):
        tools = [tools]
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise TemplateError("'tools' must be a JSON list of function schemas")
    return [t if "type" in t else {"type": "function", "function": t} for t in tools] or None


def parse_calls(content: str) -> list[dict[str, Any]]:
    """A function_call turn's content, one call or a list of calls, as [{"name", "arguments"}, ...]."""
    try:
        calls = json.loads(content)
    except json.JSONDecodeError as err:
        raise TemplateError(
            f"a function_call turn must hold the call as JSON ({err}): {content[:80]!r}"
        ) from None
    calls = calls if isinstance(calls, list) else [calls]
    out = []
    for call in calls:
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            raise TemplateError(
                f'a function call must be {{"name": ..., "arguments": {{...}}}}, got {call!r}'
            )
        arguments = call.get("arguments", {})
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except json.JSONDecodeError:
                raise TemplateError(f"the arguments of call {call['name']!r} are not JSON") from None
        out.append({"name": call["name"], "arguments": arguments})
    return out


def _dumps(value: Any) -> str:
    """JSON as the chat templates' `tojson` filter writes it (transformers: ensure_ascii=False)."""
    return json.dumps(value, ensure_ascii=False)


_QWEN_TOOLS = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>{tools}\n</tools>\n\n"
    "For each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
)


_QWEN_RESULT = (
    "<|im_start|>user\n<tool_response>\n{content}\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
)


def _tool_system(system: str, tools: list[dict[str, Any]]) -> str:
    """The system block's content with the tool list (Qwen2.5 keeps its default system prompt in front;
    Qwen3 puts the tool text alone when there is no system prompt)."""
    listing = _QWEN_TOOLS.replace("{tools}", "".join("\n" + _dumps(tool) for tool in tools))
    return f"{system}\n\n{listing}" if system else listing


def _render_calls(content: str) -> str:
    return "\n".join(
        '<tool_call>\n{"name": '
        + _dumps(c["name"])
        + ', "arguments": '
        + _dumps(c["arguments"])
        + "}\n</tool_call>"
        for c in parse_calls(content)
    )


def split_reasoning(content: str) -> tuple[str, str]:
    """(reasoning, answer) of an answer that holds `<think>reasoning</think>answer`, as Qwen3's and
    DeepSeek-R1's templates split it; ("", content) when there is no </think>."""
    if "</think>" not in content:
        return "", content
    reasoning, answer = content.split("</think>", 1)[0], content.split("</think>")[-1]
    return reasoning.split("<think>")[-1].strip("\n"), answer


# ---- rendering ---------------------------------------------------------------------------------


def render_pieces(
    template: Template,
    messages: list[dict[str, str]],
    system: str | None = None,
    add_generation_prompt: bool = False,
    tools: str | list | None = None,
    enable_thinking: bool = True,
) -> list[tuple[str, bool]]:
    """The conversation as (text, trained) pieces, with {bos}/{eos} markers still in the text.

    One untrained piece per prompt-side turn (everything before the answer), one trained piece per
    answer-side turn, and the template's untrained suffix after the last answer.
    """
    tool_list = parse_tools(tools)
    if tool_list and not template.tools:
        with_tools = ", ".join(n for n, t in TEMPLATES.items() if t.tools)
        raise TemplateError(f"template {template.name!r} has no tool-call format; use one that has "
                            f"({with_tools}) or --template tokenizer")  # fmt: skip
    if not template.tools and any(m["role"] in ("function_call", "observation") for m in messages):
        with_tools = ", ".join(n for n, t in TEMPLATES.items() if t.tools)
        raise TemplateError(f"template {template.name!r} has no tool-call format (function_call / observation "
                            f"turns); use one that has ({with_tools}) or --template tokenizer")  # fmt: skip
    system = system or template.default_system  # "" is the same as no system prompt (module docstring)
    if tool_list:
        system = _tool_system(system, tool_list)
    users = [i for i, m in enumerate(messages) if m["role"] == "user"]
    last_user = users[-1]
    system_turn = last_user if template.system_in_last_user else 0
    pieces: list[tuple[str, bool]] = []
    for i, message in enumerate(messages):
        role, content = message["role"], message["content"]
        content = content.strip() if template.trim_content else content
        if role in PROMPT_ROLES:
            prompt = _fill(template.prefix) if i == 0 else _fill(template.turn_separator)
            if i == 0 and system and not template.system_in_user:
                prompt += _fill(template.system, content=system)
            if role == "observation":  # only Qwen's tool format exists (checked above)
                prompt += _fill(_QWEN_RESULT, content=content)
            else:
                if i == system_turn and system and template.system_in_user:
                    content = _fill(template.system_in_user, system=system, content=content)
                prompt += _fill(template.turn_prefix) + _fill(template.user, content=content, idx=i // 2 + 1)
            if template.reasoning == "r1" and i >= len(messages) - 2:
                prompt += "<think>\n"  # R1's generation prompt: the answer starts inside the think block
            if template.reasoning == "qwen3" and not enable_thinking and i == len(messages) - 1:
                prompt += "<think>\n\n</think>\n\n"
            pieces.append((prompt, False))
            continue
        last = i == len(messages) - 1
        if role == "function_call":
            content = _render_calls(content)
            if template.reasoning == "qwen3" and last:  # Qwen3 opens the final answer with a think block
                content = "<think>\n\n</think>\n\n" + content
        elif template.reasoning:
            reasoning, answer = split_reasoning(content)
            if i < last_user:
                content = answer.lstrip("\n") if template.reasoning == "qwen3" else answer
            elif template.reasoning == "r1":
                content = (reasoning + "\n</think>\n\n" + answer.lstrip("\n")) if last else answer
            elif last or reasoning:
                content = "<think>\n" + reasoning + "\n</think>\n\n" + answer.lstrip("\n")
            else:
                content = answer
        text = _fill(template.assistant, content=content)
        if "{eos}" not in template.assistant:
            if template.eos == "every" or (template.eos == "last" and last):
                text += EOS
            elif template.eos == "next_turn" and last:
                text += _fill(template.next_stop)
        pieces.append((text, True))
        if last and template.suffix:
            pieces.append((_fill(template.suffix), False))
    return pieces


def render_text(template: Template, messages, system=None, bos: str = "<s>", eos: str = "</s>", **kw) -> str:
    """The conversation as one string, markers replaced (for reading and for the fixtures)."""
    text = "".join(t for t, _ in render_pieces(template, messages, system, **kw))
    return text.replace(BOS, bos).replace(EOS, eos)


def leading_special_ids(tokenizer: Any) -> list[int]:
    """The ids the tokenizer puts before any text by default (bos for LLaMA, none for BLOOM)."""
    cache = getattr(tokenizer, "_belle_leading_ids", None)
    if cache is None:
        with_specials = tokenizer("a", add_special_tokens=True)["input_ids"]
        plain = tokenizer("a", add_special_tokens=False)["input_ids"]
        start = next((i for i in range(len(with_specials)) if with_specials[i : i + len(plain)] == plain), 0)
        cache = list(with_specials[:start])
        try:
            tokenizer._belle_leading_ids = cache
        except AttributeError:
            pass
    return cache


def _adds_space_marker(tokenizer: Any) -> bool:
    """Whether the tokenizer puts SentencePiece's dummy-prefix space marker in front of every text it
    encodes (LLaMA 1/2, Mistral v1-v3, ChatGLM3); byte-level BPEs (Llama 3, Qwen, BLOOM) do not."""
    cache = getattr(tokenizer, "_belle_space_marker", None)
    if cache is None:
        ids = tokenizer("a", add_special_tokens=False)["input_ids"]
        cache = bool(ids) and tokenizer.convert_ids_to_tokens(ids[:1])[0].startswith("\u2581")
        try:
            tokenizer._belle_space_marker = cache
        except AttributeError:
            pass
    return cache


def _text_ids(text: str, tokenizer: Any, new_text: bool) -> list[int]:
    """Ids of plain text that starts a new text or continues one. Only SentencePiece tokenizers with a
    dummy prefix differ: a continuation is encoded behind an anchor whose ids are then dropped, so it gets
    no space marker of its own."""
    if new_text or not _adds_space_marker(tokenizer):
        return tokenizer(text, add_special_tokens=False)["input_ids"]
    for anchor in ("\n", "\u263a"):  # byte-fallback pieces that merge with nothing after them
        anchor_ids = tokenizer(anchor, add_special_tokens=False)["input_ids"]
        ids = tokenizer(anchor + text, add_special_tokens=False)["input_ids"]
        if ids[: len(anchor_ids)] == anchor_ids:
            return ids[len(anchor_ids) :]
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def encode_piece(text: str, tokenizer: Any, new_text: bool = True) -> list[int]:
    """Token ids of one piece: {bos}/{eos} markers become ids, the rest is tokenised without specials.
    A text starts at the beginning of the conversation (`new_text`) and after each {bos}/{eos}, as the
    official references tokenise (Meta's per-turn encode, the slow LLaMA tokenizer splitting at </s>,
    mistral_common per message); anything else continues the text before it (`_text_ids`)."""
    ids: list[int] = []
    for part in _MARKER.split(text):
        if part == BOS:
            ids += leading_special_ids(tokenizer)
            new_text = True
        elif part == EOS:
            ids.append(tokenizer.eos_token_id)
            new_text = True
        elif part:
            ids += _text_ids(part, tokenizer, new_text)
            new_text = False
    return ids


def _ends_with_marker(text: str) -> bool:
    return text.endswith((BOS, EOS))


def to_chat_messages(messages: list[dict[str, str]], system: str | None) -> list[dict[str, Any]]:
    """Our turns as a chat template expects them: function_call → an assistant message with tool_calls,
    observation → a `tool` message."""
    out: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    for message in messages:
        if message["role"] == "function_call":
            calls = [{"type": "function", "function": c} for c in parse_calls(message["content"])]
            out.append({"role": "assistant", "content": "", "tool_calls": calls})
        elif message["role"] == "observation":
            out.append({"role": "tool", "content": message["content"]})
        else:
            out.append({"role": message["role"], "content": message["content"]})
    return out


def _apply_chat_template(tokenizer: Any, chat: list, generation: bool, tools, enable_thinking: bool) -> str:
    kwargs: dict[str, Any] = {"tools": tools} if tools else {}
    if not enable_thinking:
        kwargs["enable_thinking"] = False
    return tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=generation, **kwargs)


def _tokenizer_template_pieces(tokenizer: Any, messages, system, tools=None, enable_thinking=True):
    """Pieces from the tokenizer's chat_template, by rendering growing prefixes of the conversation and
    taking differences; a template whose renderings are not prefixes of each other is refused. An answer
    piece is trained up to its end marker; whitespace after a final special token (ChatML's newline after
    <|im_end|>) is untrained, as in the named templates."""
    if not getattr(tokenizer, "chat_template", None):
        raise TemplateError(
            "--template tokenizer: this tokenizer has no chat_template; choose a named template"
        )
    chat = to_chat_messages(messages, system or None)
    offset = 1 if system else 0
    tool_list = parse_tools(tools)

    def render(n: int, generation: bool) -> str:
        if n == 0:
            return ""
        return _apply_chat_template(tokenizer, chat[:n], generation, tool_list, enable_thinking)

    specials = [
        s
        for s in (
            getattr(tokenizer, "all_special_tokens", [])
            + list(getattr(tokenizer, "added_tokens_encoder", {}))
        )
        if s
    ]
    pieces, done = [], ""
    for i, message in enumerate(messages):
        answer = message["role"] in ANSWER_ROLES
        text = render(offset + i + 1, generation=not answer)
        if not text.startswith(done):
            raise TemplateError("the tokenizer's chat_template renders a conversation differently from its "
                                "beginning (it is not prefix-stable); choose a named template")  # fmt: skip
        piece = text[len(done) :]
        done = text
        if not answer:
            pieces.append((piece, False))
            continue
        # whitespace after the answer's end marker (ChatML's newline after <|im_end|>) is not trained
        body = piece.rstrip()
        if body != piece and any(body.endswith(s) for s in specials):
            pieces += [(body, True), (piece[len(body) :], False)]
        else:
            pieces.append((piece, True))
    # a tail after an answer that is not the last belongs in front of the next prompt piece
    merged: list[tuple[str, bool]] = []
    for text, trained in pieces:
        if merged and not trained and not merged[-1][1]:
            merged[-1] = (merged[-1][0] + text, False)
        else:
            merged.append((text, trained))
    return merged


def conversation_pieces_ids(
    template: Template | str,
    tokenizer: Any,
    messages,
    system=None,
    need_answer: bool = True,
    tools: str | list | None = None,
    enable_thinking: bool = True,
) -> list[tuple[list[int], bool]]:
    check_messages(messages, need_answer)
    if template == "tokenizer":
        pieces = _tokenizer_template_pieces(tokenizer, messages, system, tools, enable_thinking)
        each = False
    else:
        pieces = render_pieces(template, messages, system, tools=tools, enable_thinking=enable_thinking)
        each = template.encode_each_piece
    out, new_text = [], True
    for text, trained in pieces:
        out.append((encode_piece(text, tokenizer, new_text or each), trained))
        new_text = _ends_with_marker(text) or (new_text and not text)
    return out


def split_budget(source_len: int, target_len: int, budget: int) -> tuple[int, int]:
    """How many prompt and answer tokens of one turn fit in `budget`. A side that needs at most half the
    budget is kept whole (the prompt first: with a short prompt this is plain "cut the answer"); when both
    are long the budget is shared in proportion."""
    if source_len + target_len <= budget:
        return source_len, target_len
    if 2 * source_len <= budget:
        return source_len, budget - source_len
    if 2 * target_len <= budget:
        return budget - target_len, target_len
    target = int(budget * target_len / (source_len + target_len))
    return budget - target, target


def _next_stop_ids(template: Template | str, tokenizer: Any) -> list[int]:
    if template == "tokenizer" or template.eos != "next_turn":
        return []
    return encode_piece(_fill(template.next_stop), tokenizer)


def encode_conversation(
    template: Template | str,
    tokenizer: Any,
    messages: list[dict[str, str]],
    system: str | None = None,
    cutoff_len: int = 1024,
    train_on_inputs: bool = False,
    tools: str | list | None = None,
) -> dict[str, list[int]] | None:
    """input_ids / attention_mask / labels for one conversation, or None when no answer token fits.

    Truncation keeps whole turns while they fit; the first turn that does not fit shares what is left
    between its prompt and answer (`split_budget`) and every later turn is dropped. A cut answer loses
    its end marker and eos: the model must not learn to stop mid-answer. The untrained suffix after the
    last answer is kept only when that answer is whole and the suffix fits.
    """
    pieces = conversation_pieces_ids(template, tokenizer, messages, system, tools=tools)
    next_stop = _next_stop_ids(template, tokenizer)
    input_ids: list[int] = []
    labels: list[int] = []
    budget = cutoff_len
    previous_whole = False  # the answer before this turn was kept whole (its stop may be trained here)
    k = 0
    while k < len(pieces):
        prompt, _ = pieces[k]
        if k + 1 == len(pieces):  # the suffix after the last answer
            if previous_whole and len(prompt) <= budget:
                input_ids += prompt
                labels += prompt if train_on_inputs else [IGNORE_INDEX] * len(prompt)
            break
        answer, _ = pieces[k + 1]
        if budget <= 0:
            break
        keep_prompt, keep_answer = split_budget(len(prompt), len(answer), budget)
        if keep_answer == 0:
            break
        prompt, cut_answer = prompt[:keep_prompt], answer[:keep_answer]
        prompt_labels = list(prompt) if train_on_inputs else [IGNORE_INDEX] * len(prompt)
        if next_stop and previous_whole:  # Baichuan / GLM: the previous answer's stop sits here
            n = min(len(next_stop), len(prompt))
            prompt_labels[:n] = next_stop[:n]
        input_ids += prompt + cut_answer
        labels += prompt_labels + cut_answer
        budget -= len(prompt) + len(cut_answer)
        previous_whole = len(cut_answer) == len(answer)
        k += 2
    if not any(label != IGNORE_INDEX for label in labels):
        return None
    return {"input_ids": input_ids, "attention_mask": [1] * len(input_ids), "labels": labels}


def encode_generation_prompt(
    template: Template | str,
    tokenizer: Any,
    messages: list[dict[str, str]],
    system: str | None = None,
    tools: str | list | None = None,
    enable_thinking: bool = True,
) -> list[int]:
    """The ids a model continues from: earlier turns as in training, then the last user turn."""
    if template == "tokenizer":
        check_messages(messages, need_answer=False)
        text = _apply_chat_template(
            tokenizer, to_chat_messages(messages, system or None), True, parse_tools(tools), enable_thinking
        )
        return encode_piece(text, tokenizer)
    pieces = conversation_pieces_ids(
        template, tokenizer, messages, system, need_answer=False, tools=tools, enable_thinking=enable_thinking
    )
    return [i for ids, _ in pieces for i in ids]


def encode_preference_pair(
    template: Template | str,
    tokenizer: Any,
    messages: list[dict[str, str]],
    chosen: str,
    rejected: str,
    system: str | None = None,
    cutoff_len: int = 1024,
) -> dict[str, list[int]] | None:
    """prompt_ids / chosen_ids / rejected_ids of one preference pair, or None when no answer token fits.

    The prompt is what `encode_generation_prompt` gives (earlier turns, then the last user turn) and each
    answer is the piece SFT trains on (text, the template's end marker, eos), so RM, DPO and PPO see the
    tokens SFT taught. Too long: prompt and the longer answer share cutoff_len as in SFT (`split_budget`),
    each cut from its end; both answers keep the same number of tokens at most.
    """
    pieces = {}
    for name, answer in (("chosen", chosen), ("rejected", rejected)):
        ids = conversation_pieces_ids(
            template, tokenizer, [*messages, {"role": "assistant", "content": answer}], system
        )
        last = max(
            i for i, (_, trained) in enumerate(ids) if trained
        )  # the suffix after it is not the answer
        pieces[name] = ids[: last + 1]
    prompt = [i for ids, _ in pieces["chosen"][:-1] for i in ids]
    chosen_ids, rejected_ids = pieces["chosen"][-1][0], pieces["rejected"][-1][0]
    keep_prompt, keep_answer = split_budget(len(prompt), max(len(chosen_ids), len(rejected_ids)), cutoff_len)
    if keep_answer == 0:
        return None
    return {
        "prompt_ids": prompt[:keep_prompt],
        "chosen_ids": chosen_ids[:keep_answer],
        "rejected_ids": rejected_ids[:keep_answer],
    }


def stop_token_ids(template: Template | str, tokenizer: Any) -> list[int]:
    """eos plus every stop word that is a single token in this tokenizer (e.g. <|im_end|>)."""
    ids = [tokenizer.eos_token_id]
    for word in getattr(template, "stop_words", ()):
        word_ids = tokenizer(word, add_special_tokens=False)["input_ids"]
        if len(word_ids) == 1:
            ids.append(word_ids[0])
    return sorted(set(ids))


def print_templates() -> None:
    """A readable table of every template rendered on a two-turn conversation."""
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
    ]
    for template in TEMPLATES.values():
        print(f"== {template.name}: {template.doc}\n{render_text(template, messages, 'Be brief.')!r}\n")


# ---- parity check: our template against the tokenizer's own chat_template -----------------------

_WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
PARITY_SAMPLES: list[dict[str, Any]] = [
    {"name": "single turn, no system", "system": None,
     "messages": [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello! How can I help?"}]},
    {"name": "multi-turn with system", "system": "You are a concise assistant.",
     "messages": [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"},
                  {"role": "user", "content": "And 3+3?"}, {"role": "assistant", "content": "6"}]},
    {"name": "Chinese", "system": "你是一个乐于助人的助手。",
     "messages": [{"role": "user", "content": "把这句话翻译成英文：今天天气很好。"},
                  {"role": "assistant", "content": "The weather is nice today."},
                  {"role": "user", "content": "谢谢！"}, {"role": "assistant", "content": "不客气。"}]},
    {"name": "tool call", "system": None, "tools": [_WEATHER_TOOL],
     "messages": [{"role": "user", "content": "Weather in Beijing?"},
                  {"role": "function_call", "content": '{"name": "get_weather", "arguments": {"city": "Beijing"}}'},
                  {"role": "observation", "content": '{"temperature": 21}'},
                  {"role": "assistant", "content": "It is 21 °C in Beijing."}]},
]  # fmt: skip


def first_difference(ours: list[int], theirs: list[int], tokenizer: Any) -> str | None:
    """None when the ids are equal, else where they part, with both sides decoded around that token."""
    if ours == theirs:
        return None
    n = next(
        (i for i, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b), min(len(ours), len(theirs))
    )

    def side(ids: list[int]) -> str:
        here = f"{ids[n]} {tokenizer.convert_ids_to_tokens(ids[n])!r}" if n < len(ids) else "(ends)"
        return f"{here}, text {tokenizer.decode(ids[max(0, n - 8) : n + 8])!r}"

    return f"first difference at token {n}: ours {side(ours)} | chat_template {side(theirs)}"


def parity_report(tokenizer: Any, template_name: str) -> list[tuple[str, str | None]]:
    """(check, None or the first difference) for each sample conversation: the whole training
    conversation and the generation prompt of its last turn, ours against the tokenizer's chat_template
    rendered and tokenised whole. A sample the chat_template refuses (Gemma 2 has no system role) is
    reported as skipped, a tool call is left out for templates without a tool format, and the stop that
    GLM/Baichuan training appends after the last answer is not compared (no chat template renders it);
    DeepSeek-R1's whole conversation is not compared either (its template drops the final reasoning)."""
    template = get_template(template_name)
    results: list[tuple[str, str | None]] = []
    for sample in PARITY_SAMPLES:
        messages, system, tools = sample["messages"], sample["system"], sample.get("tools")
        if tools and template != "tokenizer" and not template.tools:
            continue
        chat = to_chat_messages(messages, system)
        prompt_turns = max(i for i, m in enumerate(messages) if m["role"] in PROMPT_ROLES) + 1
        checks = [("generation prompt", prompt_turns)]
        if template == "tokenizer" or template.reasoning != "r1":  # R1's template drops the final reasoning
            checks.insert(0, ("conversation", len(messages)))
        for what, n in checks:
            generation = n < len(messages)
            try:
                text = _apply_chat_template(
                    tokenizer, chat[: n + (1 if system else 0)], generation, parse_tools(tools), True
                )
            except Exception as err:  # the chat_template's own raise_exception, or a missing feature
                results.append(
                    (f"{sample['name']}: {what}", f"skipped: the chat_template refuses it ({err})")
                )
                continue
            theirs = tokenizer(text, add_special_tokens=False)["input_ids"]
            try:
                if generation:
                    ours = encode_generation_prompt(template, tokenizer, messages[:n], system, tools)
                else:
                    example = encode_conversation(template, tokenizer, messages, system, 10**9, tools=tools)
                    ours = example["input_ids"]
                    stop = _next_stop_ids(template, tokenizer)  # appended for training (GLM, Baichuan), not
                    if stop and ours[-len(stop) :] == stop:  # part of the chat template's rendering
                        ours = ours[: -len(stop)]
            except TemplateError as err:
                results.append((f"{sample['name']}: {what}", f"our template cannot render it ({err})"))
                continue
            results.append((f"{sample['name']}: {what}", first_difference(ours, theirs, tokenizer)))
    return results


def chat_template_mismatch(tokenizer: Any, template_name: str) -> str | None:
    """None when the tokenizer has no chat_template or `template_name` renders every sample exactly as it
    does; else one line naming the first difference (for a warning at the start of training)."""
    if template_name == "tokenizer" or not getattr(tokenizer, "chat_template", None):
        return None
    for check, difference in parity_report(tokenizer, template_name):
        if difference and not difference.startswith("skipped"):
            return f"--template {template_name} differs from the tokenizer's chat_template ({check}): {difference}"
    return None


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m common.templates",
        description="Without a command: print every template on a two-turn example. `check`: compare a "
        "template with a model's own chat_template, token by token.",
    )
    commands = parser.add_subparsers(dest="command")
    check = commands.add_parser(
        "check", help="our template vs the tokenizer's chat_template; exit 1 on a difference"
    )
    check.add_argument("--model", required=True, help="model folder or hub name holding the tokenizer")
    check.add_argument("--template", required=True, help=f"one of {', '.join(TEMPLATE_NAMES)}")
    check.add_argument(
        "--trust_remote_code", action="store_true", help="for tokenizers that ship their own code"
    )
    args = parser.parse_args(argv)
    if args.command is None:
        print_templates()
        return 0
    from transformers import AutoTokenizer

    try:
        get_template(args.template)
        tokenizer = AutoTokenizer.from_pretrained(args.model, trust_remote_code=args.trust_remote_code)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not getattr(tokenizer, "chat_template", None):
        print(f"error: {args.model} has no chat_template to compare with", file=sys.stderr)
        return 2
    results = parity_report(tokenizer, args.template)
    for check_name, difference in results:
        print(f"{check_name}: {difference or 'identical'}")
    differ = [d for _, d in results if d and not d.startswith("skipped")]
    print("identical" if not differ else f"{len(differ)} of {len(results)} checks differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
