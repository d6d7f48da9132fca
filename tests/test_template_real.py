"""Templates on real tokenizers, token by token, against independent official references.

The tokenizer files come from packages on the package index (requirements.txt, "test-only"):
mistral_common ships Mistral's SentencePiece models (v1 = the LLaMA-1/2 style 32k vocabulary, v3 with
control tokens) and Tekken, llama-models ships the Llama 3 and Llama 4 tiktoken models, dashscope ships
qwen.tiktoken. The references are the official code paths, never our own code: Meta's Llama 2 generation.py
layout encoded with the sentencepiece library, Stanford Alpaca / FastChat's whole-text tokenisation (and
BELLE's), mistral_common's instruct tokenizers (SentencePiece and Tekken), llama-models' Llama 3 and Llama 4
ChatFormat, and for Qwen2.5 its chat template (a Jinja fixture written from the model card's format)
tokenised by tiktoken. Converted tiktoken and Tekken vocabularies are cached under .cache/.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from common.templates import (
    IGNORE_INDEX,
    encode_conversation,
    encode_generation_prompt,
    get_template,
)

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures/templates"
CACHE = REPO / ".cache/template_tokenizers"

SYSTEM = "Be brief."
TURNS = [
    {"role": "user", "content": "Hi there"},
    {"role": "assistant", "content": "Hello! How can I help?"},
    {"role": "user", "content": "把这句话翻译成英文：今天天气很好。"},
    {"role": "assistant", "content": "当然。The weather is nice today."},
]
# (name, system, messages): single turn, multi-turn with system, empty system (the same as none), Chinese
CASES = [
    ("single", None, TURNS[:2]),
    ("multi_system", SYSTEM, TURNS),
    ("empty_system", "", TURNS),
    ("chinese", "你是一个乐于助人的助手。", TURNS[2:]),
]


def labels_of(ids: list[int], spans: list[list[int]]) -> list[int]:
    """Labels that train exactly `spans`, found in order in `ids` (each must occur)."""
    labels, start = [IGNORE_INDEX] * len(ids), 0
    for span in spans:
        at = next(i for i in range(start, len(ids) - len(span) + 1) if ids[i : i + len(span)] == span)
        labels[at : at + len(span)] = span
        start = at + len(span)
    return labels


def package_file(package: str, relative: str) -> Path:
    module = __import__(package)
    return Path(module.__file__).parent / relative


# ---- tokenizers --------------------------------------------------------------------------------


def sentencepiece_tokenizer(model_file: Path, tmp: Path, legacy: bool):
    """An HF tokenizer converted from a SentencePiece .model. legacy=True gives the pipeline of the hub's
    Llama 2 / Mistral v0.1 tokenizer.json (normalizer: prepend ▁, spaces → ▁), else what transformers builds
    from a .model today (Metaspace pre-tokenizer)."""
    from tokenizers import normalizers
    from transformers import AutoTokenizer

    tmp.mkdir(parents=True, exist_ok=True)
    shutil.copy(model_file, tmp / "tokenizer.model")
    config = {
        "tokenizer_class": "LlamaTokenizer",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "add_bos_token": True,
    }
    (tmp / "tokenizer_config.json").write_text(json.dumps(config))
    tokenizer = AutoTokenizer.from_pretrained(tmp)
    if legacy:
        backend = tokenizer.backend_tokenizer
        backend.normalizer = normalizers.Sequence(
            [normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")]
        )
        backend.pre_tokenizer = None
    return tokenizer


LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+"
)
QWEN_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+"
)
LLAMA3_SPECIALS = [
    "<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|reserved_special_token_1|>",
    "<|finetune_right_pad_id|>", "<|step_id|>", "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>",
    "<|eot_id|>", "<|python_tag|>",
] + [f"<|reserved_special_token_{2 + i}|>" for i in range(256 - 11)]  # fmt: skip
# Qwen2.5's added tokens from id 151643 on, then Qwen3's four
QWEN_SPECIALS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
    "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
    "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>",
    "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>", "<tool_response>", "</tool_response>",
    "<think>", "</think>",
]  # fmt: skip


def tiktoken_tokenizer(ranks_file: Path, pattern: str, specials: list[str], **tokens: str):
    """An HF fast tokenizer from a tiktoken ranks file (transformers' TikTokenConverter), cached as
    tokenizer.json by the file's hash (the conversion takes seconds)."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    data = ranks_file.read_bytes()
    key = hashlib.sha256(data + pattern.encode() + "\n".join(specials).encode()).hexdigest()[:16]
    cached = CACHE / f"{ranks_file.stem}-{key}.json"
    if cached.is_file():
        backend = Tokenizer.from_file(str(cached))
    else:
        backend = TikTokenConverter(
            vocab_file=str(ranks_file), pattern=pattern, extra_special_tokens=specials
        ).converted()
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = cached.with_name(f"{cached.name}.{os.getpid()}.partial")
        backend.save(str(partial))
        os.replace(partial, cached)
    return PreTrainedTokenizerFast(tokenizer_object=backend, **tokens)


@pytest.fixture(scope="module")
def sp_v1():
    import sentencepiece

    return sentencepiece.SentencePieceProcessor(
        model_file=str(package_file("mistral_common", "data/tokenizer.model.v1"))
    )


@pytest.fixture(scope="module", params=["legacy", "metaspace"])
def llama_tok(request, tmp_path_factory):
    """The LLaMA-1/2-style SentencePiece vocabulary (Mistral's v1 model), both HF pipelines."""
    model = package_file("mistral_common", "data/tokenizer.model.v1")
    return sentencepiece_tokenizer(model, tmp_path_factory.mktemp("sp-v1"), legacy=request.param == "legacy")


def check(example: dict, ids: list[int], labels: list[int], tokenizer) -> None:
    """Exact ids and labels, with a readable first difference on failure."""
    assert example["input_ids"] == ids, _diff(example["input_ids"], ids, tokenizer)
    assert example["labels"] == labels, _diff(example["labels"], labels, tokenizer)


def _diff(ours: list[int], reference: list[int], tokenizer) -> str:
    n = next(
        (i for i, (a, b) in enumerate(zip(ours, reference, strict=False)) if a != b),
        min(len(ours), len(reference)),
    )

    def show(ids):
        return tokenizer.convert_ids_to_tokens([i for i in ids[max(0, n - 4) : n + 6] if i != IGNORE_INDEX])

    return f"first difference at {n}: ours {show(ours)} vs reference {show(reference)}"


# ---- LLaMA-1/2-style SentencePiece: llama2, llama2_zh, alpaca, vicuna, mistral (v1) ----------------


def meta_llama2(sp, system, messages) -> tuple[list[int], list[list[int]]]:
    """Meta's llama/generation.py chat_completion layout: each turn `[INST] q [/INST] a ` encoded as one
    text with bos and eos, <<SYS>> in the first user turn. Returns ids and the trained spans."""
    ids, spans = [], []
    for i in range(0, len(messages), 2):
        question, answer = messages[i]["content"].strip(), messages[i + 1]["content"].strip()
        if i == 0 and system:
            question = f"<<SYS>>\n{system}\n<</SYS>>\n\n{question}"
        prompt = sp.encode(f"[INST] {question} [/INST]")
        turn = sp.encode(f"[INST] {question} [/INST] {answer} ")
        assert turn[: len(prompt)] == prompt  # the answer starts at a piece boundary
        ids += [sp.bos_id(), *turn, sp.eos_id()]
        spans.append([*turn[len(prompt) :], sp.eos_id()])
    return ids, spans


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_llama2_is_metas_per_turn_encoding(case, llama_tok, sp_v1):
    """The double space marker of issue #13: the answer after [/INST] is ▁Hello, never ▁▁Hello."""
    _, system, messages = case
    ids, spans = meta_llama2(sp_v1, system, messages)
    example = encode_conversation(get_template("llama2"), llama_tok, messages, system, cutoff_len=4096)
    check(example, ids, labels_of(ids, spans), llama_tok)


def test_llama2_truncated_answer_is_a_prefix_without_eos(llama_tok, sp_v1):
    """A short prompt is kept whole and the long answer cut: the ids are the reference's first tokens,
    and the cut answer trains no eos."""
    messages = [TURNS[0], {"role": "assistant", "content": "一二三四五六七八九十" * 6}]
    ids, spans = meta_llama2(sp_v1, None, messages)
    prompt_len = len(ids) - len(spans[0])
    cutoff = 2 * prompt_len + 5
    assert cutoff < len(ids)
    cut = encode_conversation(get_template("llama2"), llama_tok, messages, None, cutoff_len=cutoff)
    assert cut["input_ids"] == ids[:cutoff]
    assert cut["labels"] == labels_of(ids, spans)[:cutoff]
    assert sp_v1.eos_id() not in cut["labels"]


def test_llama2_zh_is_the_chinese_alpaca_2_build(llama_tok, sp_v1):
    """Chinese-LLaMA-Alpaca-2 build_dataset.py: tokenizer(source) with bos, tokenizer(output + eos) without:
    each is its own SentencePiece text, so the answer does start with the space marker."""
    system = "You are a helpful assistant. 你是一个乐于助人的助手。"
    question, answer = TURNS[2]["content"], TURNS[3]["content"]
    source = sp_v1.encode(f"[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{question} [/INST]")
    target = [*sp_v1.encode(answer), sp_v1.eos_id()]
    ids = [sp_v1.bos_id(), *source, *target]
    example = encode_conversation(get_template("llama2_zh"), llama_tok, TURNS[2:], None, cutoff_len=4096)
    check(example, ids, labels_of(ids, [target]), llama_tok)


@pytest.mark.parametrize("system", [None, ""])
def test_alpaca_is_stanfords_whole_text(system, llama_tok, sp_v1):
    """Stanford Alpaca train.py: source + target tokenised as one text, labels after the source's length.
    An empty system prompt is no system prompt: both give Alpaca's own preamble."""
    preamble = get_template("alpaca").default_system
    question, answer = TURNS[2]["content"], TURNS[3]["content"]
    source = f"{preamble}\n\n### Instruction:\n{question}\n\n### Response:"
    prompt_ids = sp_v1.encode(source)
    ids = [sp_v1.bos_id(), *sp_v1.encode(source + answer), sp_v1.eos_id()]
    assert ids[1 : 1 + len(prompt_ids)] == prompt_ids
    example = encode_conversation(get_template("alpaca"), llama_tok, TURNS[2:], system, cutoff_len=4096)
    check(example, ids, labels_of(ids, [ids[1 + len(prompt_ids) :]]), llama_tok)


def test_vicuna_is_fastchats_whole_conversation(llama_tok, sp_v1):
    """FastChat train.py tokenises the whole vicuna_v1.1 conversation (each text between </s> is its own
    SentencePiece text, as the LLaMA tokenizer splits at special tokens); answers are ' ' + a + '</s>'."""
    preamble = get_template("vicuna").default_system
    texts = [f"{preamble} USER: {TURNS[0]['content']} ASSISTANT: {TURNS[1]['content']}",
             f"USER: {TURNS[2]['content']} ASSISTANT: {TURNS[3]['content']}"]  # fmt: skip
    ids, spans = [sp_v1.bos_id()], []
    for text, answer in zip(texts, (TURNS[1], TURNS[3]), strict=True):
        prompt = sp_v1.encode(text[: -len(answer["content"]) - 1])  # up to "ASSISTANT:"
        whole = sp_v1.encode(text)
        assert whole[: len(prompt)] == prompt
        ids += [*whole, sp_v1.eos_id()]
        spans.append([*whole[len(prompt) :], sp_v1.eos_id()])
    example = encode_conversation(get_template("vicuna"), llama_tok, TURNS, None, cutoff_len=4096)
    check(example, ids, labels_of(ids, spans), llama_tok)


# ---- "Assistant: " + answer tokenised whole: belle, xverse, default --------------------------------

# Each official layout written out here, not taken from common/templates.py: (system block, user turn with its
# "Assistant: ", text between an answer's eos and the next turn).
HUMAN_ASSISTANT = {
    "belle": ("{system}\n\n", "Human: {q}\n\nAssistant: {a}", ""),
    "xverse": ("{system}\n\n", "Human: {q}\n\nAssistant: {a}", ""),
    "default": ("System: {system}\n", "Human: {q}\nAssistant: {a}", "\n"),
}


def human_assistant_reference(name, encode, eos_id, system, messages) -> tuple[list[int], list[list[int]]]:
    """Each turn's official text tokenised whole by `encode` (a text ends at eos, as the LLaMA tokenizer splits
    at </s> and tiktoken at every special token), then eos. The trained span of a turn starts right after
    `Assistant:`, asserted to be a token boundary of the whole text; the space after it has none (it is
    glued to the answer's first word), so it is the span's first token or part of it."""
    system_block, turn, between = HUMAN_ASSISTANT[name]
    ids, spans = [], []
    for i in range(0, len(messages), 2):
        text = (system_block.format(system=system) if i == 0 and system else "") + (between if i else "")
        text += turn.format(q=messages[i]["content"], a=messages[i + 1]["content"])
        head = encode(text[: text.index("Assistant:") + len("Assistant:")])
        whole = encode(text)
        assert whole[: len(head)] == head, "no token boundary after 'Assistant:'"
        ids += [*whole, eos_id]
        spans.append([*whole[len(head) :], eos_id])
    return ids, spans


@pytest.mark.parametrize("name", sorted(HUMAN_ASSISTANT))
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_human_assistant_is_the_whole_text_on_sentencepiece(case, name, llama_tok, sp_v1):
    """The ids are the official text tokenised whole (`Assistant:` then `▁Hello`, not `▁` + `Hello`), and the
    labels train each answer from the token after `Assistant:` on, its eos included."""
    _, system, messages = case
    ids, spans = human_assistant_reference(name, sp_v1.encode, sp_v1.eos_id(), system, messages)
    ids = [sp_v1.bos_id(), *ids]
    example = encode_conversation(get_template(name), llama_tok, messages, system, cutoff_len=4096)
    check(example, ids, labels_of(ids, spans), llama_tok)


def test_belle_answer_starts_with_the_space_glued_to_its_first_word(llama_tok):
    """Issue #13's BELLE case written out, ids and labels literal: the answer's first token is `▁Hello`
    (22557); the prompt used to end with a lone `▁` (28705) and the answer began with `Hello` (16230),
    a split that the whole-text tokenisation never makes. The generation prompt ends at `:`."""
    template = get_template("belle")
    example = encode_conversation(template, llama_tok, TURNS[:2], None, cutoff_len=4096)
    assert llama_tok.convert_ids_to_tokens(example["input_ids"]) == [
        "<s>", "\u2581Human", ":", "\u2581Hi", "\u2581there", "<0x0A>", "<0x0A>", "Ass", "istant", ":",
        "\u2581Hello", "!", "\u2581How", "\u2581can", "\u2581I", "\u2581help", "?", "</s>",
    ]  # fmt: skip
    answer = [22557, 28808, 1602, 541, 315, 1316, 28804, 2]
    prompt = [1, 10649, 28747, 15359, 736, 13, 13, 7226, 11143, 28747]
    assert example["input_ids"] == prompt + answer
    assert example["labels"] == [IGNORE_INDEX] * len(prompt) + answer
    assert encode_generation_prompt(template, llama_tok, TURNS[:1]) == prompt


# ---- Mistral: mistral_common is the reference -----------------------------------------------------


@functools.cache
def mistral_tokenizer(model_file: Path):
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

    return MistralTokenizer.from_file(str(model_file))


def mistral_common_tokens(model_file: Path, system, messages, continue_final: bool) -> list[int]:
    """mistral_common's encoding of a chat request: the conversation with its last answer continued
    (no eos), or, for a request ending with a user turn, the prompt the model continues from."""
    from mistral_common.protocol.instruct.messages import AssistantMessage, SystemMessage, UserMessage
    from mistral_common.protocol.instruct.request import ChatCompletionRequest

    chat = [SystemMessage(content=system)] if system else []
    chat += [UserMessage(content=m["content"]) if m["role"] == "user" else AssistantMessage(content=m["content"])
             for m in messages]  # fmt: skip
    request = ChatCompletionRequest(messages=chat, continue_final_message=continue_final)
    return mistral_tokenizer(model_file).encode_chat_completion(request).tokens


def mistral_common_reference(model_file: Path, system, messages) -> tuple[list[int], list[list[int]]]:
    """mistral_common's own encoding of the conversation (its last answer continued, then eos), and each
    answer's tokens + eos as its instruct tokenizer encodes an assistant message."""
    tokens = mistral_common_tokens(model_file, system, messages, continue_final=True)
    raw = mistral_tokenizer(model_file).instruct_tokenizer.tokenizer
    eos = raw.eos_id
    spans = [
        [*raw.encode(m["content"], bos=False, eos=False), eos] for m in messages if m["role"] == "assistant"
    ]
    return [*tokens, eos], spans


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_mistral_v1_is_mistral_common(case, llama_tok):
    _, system, messages = case
    ids, spans = mistral_common_reference(
        package_file("mistral_common", "data/tokenizer.model.v1"), system, messages
    )
    example = encode_conversation(get_template("mistral"), llama_tok, messages, system, cutoff_len=4096)
    check(example, ids, labels_of(ids, spans), llama_tok)


@pytest.fixture(scope="module")
def mistral_v3_tok(tmp_path_factory):
    model = package_file("mistral_common", "data/mistral_instruct_tokenizer_240323.model.v3")
    return sentencepiece_tokenizer(model, tmp_path_factory.mktemp("sp-v3"), legacy=False)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_mistral_v3_is_mistral_common(case, mistral_v3_tok):
    """Control tokens [INST]/[/INST] as single ids, the system prompt in the LAST user turn."""
    _, system, messages = case
    model = package_file("mistral_common", "data/mistral_instruct_tokenizer_240323.model.v3")
    ids, spans = mistral_common_reference(model, system, messages)
    example = encode_conversation(
        get_template("mistral_v3"), mistral_v3_tok, messages, system, cutoff_len=4096
    )
    check(example, ids, labels_of(ids, spans), mistral_v3_tok)


# The Tekken vocabularies mistral_common ships: Mistral-Nemo-2407's and Pixtral-2409's. Ministral-8B-2410's own
# tekken.json is not among them; the format under test (mistral_common's V3 instruct encoding on Tekken) is the same.
TEKKEN = ["tekken_240718.json", "tekken_240911.json"]


@pytest.fixture(scope="module", params=TEKKEN)
def tekken(request, tmp_path_factory):
    """(tekken file, HF tokenizer): transformers' own tekken converter, given the special tokens that these
    older files leave to mistral_common (its list, copied into the file), and bos in front of a text as in
    the model's tokenizer.json. Cached under .cache/ like the tiktoken conversions."""
    from mistral_common.tokens.tokenizers.tekken import Tekkenizer
    from tokenizers import Tokenizer, processors
    from transformers import PreTrainedTokenizerFast
    from transformers.integrations.mistral import MistralConverter

    model = package_file("mistral_common", f"data/{request.param}")
    cached = CACHE / f"{model.stem}-{hashlib.sha256(model.read_bytes()).hexdigest()[:16]}.json"
    if cached.is_file():
        backend = Tokenizer.from_file(str(cached))
    else:
        raw = json.loads(model.read_text())
        raw["special_tokens"] = [
            {**s, "token_str": str(s["token_str"].value)} for s in Tekkenizer.DEPRECATED_SPECIAL_TOKENS
        ]
        copy = tmp_path_factory.mktemp("tekken") / "tekken.json"
        copy.write_text(json.dumps(raw))
        backend = MistralConverter(vocab_file=str(copy)).converted()
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = cached.with_name(f"{cached.name}.{os.getpid()}.partial")
        backend.save(str(partial))
        os.replace(partial, cached)
    backend.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    assert tokenizer.convert_tokens_to_ids(["<s>", "</s>", "[INST]", "[/INST]"]) == [1, 2, 3, 4]
    return model, tokenizer


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_ministral_is_mistral_common_on_tekken(case, tekken):
    """Ministral / Mistral-Nemo: `[INST]q[/INST]a</s>` with no spaces on the Tekken vocabulary, the system
    prompt in the LAST user turn; the generation prompt is mistral_common's request without the answer."""
    model, tokenizer = tekken
    _, system, messages = case
    ids, spans = mistral_common_reference(model, system, messages)
    example = encode_conversation(get_template("ministral"), tokenizer, messages, system, cutoff_len=4096)
    check(example, ids, labels_of(ids, spans), tokenizer)
    prompt = mistral_common_tokens(model, system, messages[:-1], continue_final=False)
    assert encode_generation_prompt(get_template("ministral"), tokenizer, messages[:-1], system) == prompt
    assert example["input_ids"][: len(prompt)] == prompt


# ---- Llama 4: llama-models' ChatFormat is the reference -------------------------------------------


@functools.cache
def llama4_chat_format():
    """llama-models' Llama 4 ChatFormat over its tokenizer. Its module imports the image transforms, which
    need torchvision; text never reaches them, so without torchvision they are stubbed for the import."""
    import importlib.util
    import sys
    import types
    from unittest import mock

    from llama_models.llama4.tokenizer import Tokenizer

    stubs = {}
    if importlib.util.find_spec("torchvision") is None:
        stub = types.ModuleType("llama_models.llama4.preprocess")
        stub.ResizeNormalizeImageTransform = stub.VariableSizeImageTransform = None
        stubs["llama_models.llama4.preprocess"] = stub
    with mock.patch.dict(sys.modules, stubs):
        from llama_models.llama4.chat_format import ChatFormat
    return ChatFormat(Tokenizer(package_file("llama_models", "llama4/tokenizer.model")))


@pytest.fixture(scope="module")
def llama4_tok():
    from llama_models.llama4.tokenizer import BASIC_SPECIAL_TOKENS, LLAMA4_SPECIAL_TOKENS, Tokenizer

    specials = BASIC_SPECIAL_TOKENS + LLAMA4_SPECIAL_TOKENS
    specials += [
        f"<|reserved_special_token_{i}|>"
        for i in range(Tokenizer.num_reserved_special_tokens - len(specials))
    ]
    tokenizer = tiktoken_tokenizer(package_file("llama_models", "llama4/tokenizer.model"), Tokenizer.O200K_PATTERN,
                                   specials, bos_token="<|begin_of_text|>", eos_token="<|eot|>")  # fmt: skip
    reference = llama4_chat_format().tokenizer.special_tokens
    assert all(
        tokenizer.convert_tokens_to_ids(t) == reference[t]
        for t in ("<|begin_of_text|>", "<|eot|>", "<|header_start|>")
    )
    return tokenizer


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_llama4_is_llama_models_chat_format(case, llama4_tok):
    """bos, then each message as ChatFormat.encode_message encodes it (header, text, <|eot|>); the trained
    spans are each answer after its header, <|eot|> included; the generation prompt is encode_dialog_prompt."""
    from llama_models.datatypes import RawMessage, ToolPromptFormat

    _, system, messages = case
    formatter = llama4_chat_format()
    header = formatter._encode_header("assistant")
    chat = [RawMessage(**m) for m in ([{"role": "system", "content": system}] if system else []) + messages]
    ids, spans = [formatter.tokenizer.bos_id], []
    for message in chat:
        tokens, _ = formatter.encode_message(message, ToolPromptFormat.json)
        ids += tokens
        if message.role == "assistant":
            assert tokens[: len(header)] == header
            spans.append(tokens[len(header) :])
    example = encode_conversation(get_template("llama4"), llama4_tok, messages, system, cutoff_len=4096)
    check(example, ids, labels_of(ids, spans), llama4_tok)
    prompt = formatter.encode_dialog_prompt(chat[:-1]).tokens
    assert encode_generation_prompt(get_template("llama4"), llama4_tok, messages[:-1], system) == prompt
