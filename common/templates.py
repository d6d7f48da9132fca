"""Chat templates: how a conversation becomes the exact token ids and labels a model was trained on.

A conversation is an optional system prompt plus alternating user/assistant turns. `encode_conversation`
renders it with a named template into (input_ids, labels): labels copy the ids of EVERY assistant turn
(and its end marker / eos) and are IGNORE_INDEX elsewhere. Each prompt piece and each answer piece is
tokenised on its own, because a byte-level BPE can merge characters across the boundary.

Markers in template strings: `{bos}` is the special tokens the tokenizer itself puts in front of a text
(LLaMA/Mistral: `<s>`; ChatGLM2: `[gMASK]sop`; BLOOM/Qwen/Falcon: nothing), `{eos}` is its eos token.
Model-specific special tokens (`<|im_start|>`, `<|eot_id|>`, `<reserved_102>`, ...) are written as text:
the real model's tokenizer knows them as added tokens and encodes each as ONE id; our tiny test vocab
does not, so there they become several ordinary byte tokens (good enough to test the layout).

    python -c "from common.templates import print_templates; print_templates()"
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

IGNORE_INDEX = -100
# {bos}/{eos} become these sentinels while rendering, so text in the data can never turn into a special id.
BOS, EOS = "\x00bos\x00", "\x00eos\x00"
_MARKER = re.compile("(\x00bos\x00|\x00eos\x00)")


def _fill(fmt: str, **values: Any) -> str:
    text = fmt.replace("{bos}", BOS).replace("{eos}", EOS)
    for key, value in values.items():
        text = text.replace("{" + key + "}", str(value))
    return text


class TemplateError(ValueError):
    """A conversation or template that cannot be rendered; the message says why."""


@dataclasses.dataclass(frozen=True)
class Template:
    """One prompt format. Untrained pieces: prefix, system, turn_prefix, turn_separator, user.
    Trained: assistant (with its end marker) and, by `eos`, the tokenizer's eos after it."""

    name: str
    user: str  # "{content}"; "{idx}" is the 1-based round number (ChatGLM2)
    assistant: str  # "{content}" plus the end-of-answer marker, all trained
    system: str = "{content}\n\n"  # before the first user turn when there is a system prompt
    prefix: str = "{bos}"  # start of the conversation
    turn_prefix: str = ""  # before every user turn (Llama 2 repeats <s>)
    turn_separator: str = ""  # between an answer and the next user turn
    system_in_user: str | None = None  # "{system}...{content}": system folded into the first user turn
    eos: str = "every"  # tokenizer eos after every answer, only the "last", or "none" (marker ends it)
    default_system: str = ""
    stop_words: tuple[str, ...] = ()
    doc: str = ""

    @property
    def eos_every_turn(self) -> bool:
        return self.eos == "every"


def _t(name: str, doc: str, **kw: Any) -> Template:
    return Template(name=name, doc=doc, **kw)


TEMPLATES: dict[str, Template] = {
    t.name: t
    for t in [
        _t(
            "default",
            "The repo's neutral plain-text format for base models with no chat format of their own "
            "(no official source; `System:`/`Human:`/`Assistant:` lines).",
            system="System: {content}\n",
            user="Human: {content}\nAssistant: ",
            assistant="{content}{eos}",
            turn_separator="\n",
        ),  # fmt: skip
        _t(
            "alpaca",
            "Stanford Alpaca, github.com/tatsu-lab/stanford_alpaca train.py PROMPT_DICT "
            "(`### Instruction:\\n...\\n\\n### Response:`, target = output + eos); turns joined by a blank line.",
            user="### Instruction:\n{content}\n\n### Response:",
            assistant="{content}{eos}",
            turn_separator="\n\n",
            default_system="Below is an instruction that describes a task. "
            "Write a response that appropriately completes the request.",
        ),  # fmt: skip
        _t(
            "vicuna",
            "Vicuna v1.1, github.com/lm-sys/FastChat fastchat/conversation.py `vicuna_v1.1` "
            "(ADD_COLON_TWO, sep ' ', sep2 '</s>').",
            system="{content} ",
            user="USER: {content} ASSISTANT:",
            assistant=" {content}{eos}",
            default_system="A chat between a curious user and an artificial intelligence assistant. "
            "The assistant gives helpful, detailed, and polite answers to the user's questions.",
        ),  # fmt: skip
        _t(
            "belle",
            "BELLE, github.com/LianjiaTech/BELLE train/ (README data format and sft_train.py): "
            "`Human: {q}\\n\\nAssistant: ` + answer + eos per turn..",
            user="Human: {content}\n\nAssistant: ",
            assistant="{content}{eos}",
        ),  # fmt: skip
        _t(
            "llama2",
            "Llama 2 chat, github.com/meta-llama/llama llama/generation.py chat_completion "
            "(B_INST/E_INST, <<SYS>> in the first user turn, each turn encoded with bos and eos).",
            prefix="",
            turn_prefix="{bos}",
            user="[INST] {content} [/INST]",
            assistant=" {content} {eos}",
            system_in_user="<<SYS>>\n{system}\n<</SYS>>\n\n{content}",
        ),  # fmt: skip
        _t(
            "llama3",
            "Llama 3 instruct, meta-llama/Meta-Llama-3-8B-Instruct tokenizer_config.json "
            "chat_template (header tokens, <|eot_id|> ends every turn).",
            prefix="<|begin_of_text|>",
            system="<|start_header_id|>system<|end_header_id|>\n\n{content}<|eot_id|>",
            user="<|start_header_id|>user<|end_header_id|>\n\n{content}<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n",
            assistant="{content}<|eot_id|>",
            eos="none",
            stop_words=("<|eot_id|>",),
        ),  # fmt: skip
        _t(
            "mistral",
            "Mistral-7B-Instruct-v0.1 tokenizer_config.json chat_template (bos once, "
            "`[INST] q [/INST]` + answer + eos); no system role, so it is folded into the first turn.",
            user="[INST] {content} [/INST]",
            assistant="{content}{eos}",
            system_in_user="{system}\n\n{content}",
        ),  # fmt: skip
        _t(
            "chatml",
            "ChatML as used by Qwen, Qwen/Qwen1.5-7B-Chat tokenizer_config.json chat_template; "
            "the final newline after the last <|im_end|> is left out (nothing follows it in training).",
            prefix="",
            system="<|im_start|>system\n{content}<|im_end|>\n",
            user="<|im_start|>user\n{content}<|im_end|>\n<|im_start|>assistant\n",
            assistant="{content}<|im_end|>",
            turn_separator="\n",
            eos="none",
            default_system="You are a helpful assistant.",
            stop_words=("<|im_end|>",),
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
            "(id 195), assistant token <reserved_103> (id 196); eos after the last answer only.",
            prefix="",
            system="{content}",
            user="<reserved_102>{content}<reserved_103>",
            assistant="{content}",
            eos="last",
        ),  # fmt: skip
        _t(
            "baichuan2",
            "Baichuan2-Chat, github.com/baichuan-inc/Baichuan2 fine-tune/fine-tune.py: user "
            "<reserved_106> (id 195), assistant <reserved_107> (id 196), eos once at the end.",
            prefix="",
            system="{content}",
            user="<reserved_106>{content}<reserved_107>",
            assistant="{content}",
            eos="last",
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
            "XVERSE-13B-Chat model card: `Human: q\\n\\nAssistant: a` + eos (<|endoftext|>).",
            user="Human: {content}\n\nAssistant: ",
            assistant="{content}{eos}",
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


# ---- rendering ---------------------------------------------------------------------------------


def check_messages(messages: list[dict[str, str]], need_answer: bool = True) -> None:
    """user, assistant, user, ... ending with an assistant answer (or a user turn for generation)."""
    if not messages:
        raise TemplateError("the conversation has no turns")
    for i, message in enumerate(messages):
        expected = "user" if i % 2 == 0 else "assistant"
        if message.get("role") != expected:
            raise TemplateError(f"turn {i} is {message.get('role')!r}, expected {expected!r} (roles must alternate, "
                                "starting with the user)")  # fmt: skip
        if not isinstance(message.get("content"), str):
            raise TemplateError(f"turn {i} ({expected}) has no text content")
    last = messages[-1]["role"]
    if need_answer and last != "assistant":
        raise TemplateError("the conversation must end with an assistant answer")
    if not need_answer and last != "user":
        raise TemplateError("a generation prompt must end with a user turn")


def render_pieces(
    template: Template, messages: list[dict[str, str]], system: str | None = None, add_generation_prompt=False
) -> list[tuple[str, bool]]:
    """The conversation as (text, trained) pieces, with {bos}/{eos} markers still in the text.

    One untrained piece per user turn (everything before the answer) and one trained piece per answer.
    """
    system = template.default_system if system is None else system
    pieces: list[tuple[str, bool]] = []
    for i in range(0, len(messages), 2):
        round_idx = i // 2
        content = messages[i]["content"]
        prompt = ""
        if round_idx == 0:
            prompt += _fill(template.prefix)
            if system and template.system_in_user:
                content = _fill(template.system_in_user, system=system, content=content)
            elif system:
                prompt += _fill(template.system, content=system)
        else:
            prompt += _fill(template.turn_separator)
        prompt += _fill(template.turn_prefix) + _fill(template.user, content=content, idx=round_idx + 1)
        pieces.append((prompt, False))
        if i + 1 < len(messages):
            answer = _fill(template.assistant, content=messages[i + 1]["content"])
            if "{eos}" not in template.assistant:
                if template.eos == "every" or (template.eos == "last" and i + 2 == len(messages)):
                    answer += EOS
            pieces.append((answer, True))
    return pieces


def render_text(template: Template, messages, system=None, bos: str = "<s>", eos: str = "</s>") -> str:
    """The conversation as one string, markers replaced (for reading and for the fixtures)."""
    text = "".join(t for t, _ in render_pieces(template, messages, system))
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


def encode_piece(text: str, tokenizer: Any) -> list[int]:
    """Token ids of one piece: {bos}/{eos} markers become ids, the rest is tokenised without specials."""
    ids: list[int] = []
    for part in _MARKER.split(text):
        if part == BOS:
            ids += leading_special_ids(tokenizer)
        elif part == EOS:
            ids.append(tokenizer.eos_token_id)
        elif part:
            ids += tokenizer(part, add_special_tokens=False)["input_ids"]
    return ids


def _tokenizer_template_pieces(tokenizer: Any, messages, system) -> list[tuple[str, bool]]:
    """Pieces from the tokenizer's chat_template, by rendering growing prefixes of the conversation and
    taking differences; a template whose renderings are not prefixes of each other is refused."""
    if not getattr(tokenizer, "chat_template", None):
        raise TemplateError(
            "--template tokenizer: this tokenizer has no chat_template; choose a named template"
        )
    full = ([{"role": "system", "content": system}] if system else []) + list(messages)
    offset = 1 if system else 0

    def render(n: int, generation: bool) -> str:
        if n == 0:
            return ""
        return tokenizer.apply_chat_template(full[:n], tokenize=False, add_generation_prompt=generation)

    pieces, done = [], ""
    for i, message in enumerate(messages):
        answer = message["role"] == "assistant"
        text = render(offset + i + 1, generation=not answer)
        if not text.startswith(done):
            raise TemplateError("the tokenizer's chat_template renders a conversation differently from its "
                                "beginning (it is not prefix-stable); choose a named template")  # fmt: skip
        pieces.append((text[len(done) :], answer))
        done = text
    return pieces


def conversation_pieces_ids(
    template: Template | str, tokenizer: Any, messages, system=None, need_answer: bool = True
) -> list[tuple[list[int], bool]]:
    check_messages(messages, need_answer)
    if template == "tokenizer":
        pieces = _tokenizer_template_pieces(tokenizer, messages, system)
    else:
        pieces = render_pieces(template, messages, system)
    return [(encode_piece(text, tokenizer), trained) for text, trained in pieces]


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


def encode_conversation(
    template: Template | str,
    tokenizer: Any,
    messages: list[dict[str, str]],
    system: str | None = None,
    cutoff_len: int = 1024,
    train_on_inputs: bool = False,
) -> dict[str, list[int]] | None:
    """input_ids / attention_mask / labels for one conversation, or None when no answer token fits.

    Truncation keeps whole turns while they fit; the first turn that does not fit shares what is left
    between its prompt and answer (`split_budget`) and every later turn is dropped. A cut answer loses
    its end marker and eos: the model must not learn to stop mid-answer.
    """
    pieces = conversation_pieces_ids(template, tokenizer, messages, system)
    input_ids: list[int] = []
    labels: list[int] = []
    budget = cutoff_len
    for k in range(0, len(pieces), 2):
        (prompt, _), (answer, _) = pieces[k], pieces[k + 1]
        if budget <= 0:
            break
        keep_prompt, keep_answer = split_budget(len(prompt), len(answer), budget)
        if keep_answer == 0:
            break
        prompt, answer = prompt[:keep_prompt], answer[:keep_answer]
        input_ids += prompt + answer
        labels += (prompt if train_on_inputs else [IGNORE_INDEX] * len(prompt)) + answer
        budget -= len(prompt) + len(answer)
    if not any(label != IGNORE_INDEX for label in labels):
        return None
    return {"input_ids": input_ids, "attention_mask": [1] * len(input_ids), "labels": labels}


def encode_generation_prompt(
    template: Template | str, tokenizer: Any, messages: list[dict[str, str]], system: str | None = None
) -> list[int]:
    """The ids a model continues from: earlier turns as in training, then the last user turn."""
    if template == "tokenizer":
        check_messages(messages, need_answer=False)
        text = tokenizer.apply_chat_template(
            ([{"role": "system", "content": system}] if system else []) + list(messages),
            tokenize=False,
            add_generation_prompt=True,
        )
        return encode_piece(text, tokenizer)
    pieces = conversation_pieces_ids(template, tokenizer, messages, system, need_answer=False)
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
    pieces = {
        name: conversation_pieces_ids(
            template, tokenizer, [*messages, {"role": "assistant", "content": answer}], system
        )
        for name, answer in (("chosen", chosen), ("rejected", rejected))
    }
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
