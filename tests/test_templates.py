"""Chat templates are exact: the rendered text matches each model's official format (hand-written
fixture with sources), and ids/labels on the tiny tokenizer train every answer and nothing else."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from common.modeling import load_tokenizer
from common.templates import (
    IGNORE_INDEX,
    TEMPLATES,
    TemplateError,
    conversation_pieces_ids,
    encode_conversation,
    encode_generation_prompt,
    get_template,
    render_pieces,
    render_text,
    split_budget,
)

FIXTURE = json.loads((Path(__file__).parent / "fixtures/templates/two_turn_with_system.json").read_text())
SYSTEM = FIXTURE["conversation"]["system"]
MESSAGES = FIXTURE["conversation"]["messages"]
NAMES = sorted(FIXTURE["templates"])


@pytest.fixture(scope="module")
def tokenizer(tiny_llama):
    return load_tokenizer(str(tiny_llama))


def expected_ids(text: str, tokenizer) -> list[int]:
    """Ids of a fixture segment: <s>/</s> are the bos/eos ids, the rest plain text."""
    ids = []
    for part in re.split(r"(<s>|</s>)", text):
        if part == "<s>":
            ids.append(tokenizer.bos_token_id)
        elif part == "</s>":
            ids.append(tokenizer.eos_token_id)
        elif part:
            ids += tokenizer(part, add_special_tokens=False)["input_ids"]
    return ids


def test_every_template_has_a_fixture_with_a_source():
    assert sorted(TEMPLATES) == NAMES
    assert all(FIXTURE["templates"][n]["source"] for n in NAMES)
    assert all(TEMPLATES[n].doc for n in NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_rendered_text_is_the_official_format(name):
    segments = FIXTURE["templates"][name]["segments"]
    assert render_text(get_template(name), MESSAGES, SYSTEM) == "".join(text for text, _ in segments)


@pytest.mark.parametrize("name", NAMES)
def test_exact_ids_and_labels_train_every_answer(name, tokenizer):
    entry = FIXTURE["templates"][name]
    example = encode_conversation(get_template(name), tokenizer, MESSAGES, SYSTEM, cutoff_len=4096)
    stop = expected_ids(entry.get("stop", ""), tokenizer)
    ids, labels = [], []
    for text, trained in entry["segments"]:
        piece = expected_ids(text, tokenizer)
        ids += piece
        if trained == "stop":  # the previous answer's stop label sits on this turn's first token(s)
            labels += stop + [IGNORE_INDEX] * (len(piece) - len(stop))
        else:
            labels += piece if trained else [IGNORE_INDEX] * len(piece)
    assert example["input_ids"] == ids
    assert example["labels"] == labels
    assert example["attention_mask"] == [1] * len(ids)
    if "stop" not in entry:  # the trained spans decode to exactly the fixture's answer segments
        spans, current = [], []
        for label in example["labels"] + [IGNORE_INDEX]:
            if label == IGNORE_INDEX and current:
                spans.append(tokenizer.decode(current))
                current = []
            elif label != IGNORE_INDEX:
                current.append(label)
        assert spans == [text for text, trained in entry["segments"] if trained]


@pytest.mark.parametrize("name", NAMES)
def test_generation_prompt_is_the_training_prompt(name, tokenizer):
    template = get_template(name)
    train = encode_conversation(template, tokenizer, MESSAGES, SYSTEM, cutoff_len=4096)
    prompt = encode_generation_prompt(template, tokenizer, MESSAGES[:3], SYSTEM)
    n = len(prompt)
    assert train["input_ids"][:n] == prompt
    assert train["labels"][n - 1] == IGNORE_INDEX and train["labels"][n] != IGNORE_INDEX


@pytest.mark.parametrize("name", NAMES)
def test_no_prompt_piece_ends_with_a_space(name):
    """A space before the answer is glued to its first word by every tokenizer (`▁Hello`, ` Hello`), so it
    belongs to the answer piece: a prompt that ended with it would be tokenised `▁` + `Hello`, never the
    official text's split (tests/test_template_real.py checks belle/xverse/default on real vocabularies)."""
    template = get_template(name)
    for messages in (MESSAGES, MESSAGES[:3]):
        for system in (None, SYSTEM):
            prompts = [t for t, trained in render_pieces(template, messages, system) if not trained]
            assert not any(t.endswith((" ", "\u3000")) for t in prompts), prompts


def test_truncation_keeps_whole_turns_then_shares_the_rest(tokenizer):
    template = get_template("belle")
    full = encode_conversation(template, tokenizer, MESSAGES, None, cutoff_len=4096)
    first_turn = encode_conversation(template, tokenizer, MESSAGES[:2], None, cutoff_len=4096)
    n1 = len(first_turn["input_ids"])
    # Room for the first turn and 4 more tokens. The second answer " 4</s>" is 2 tokens: it is short (at most
    # half the budget), so it is kept whole and the second prompt is cut to its first 2 tokens.
    cut = encode_conversation(template, tokenizer, MESSAGES, None, cutoff_len=n1 + 4)
    assert cut["input_ids"][:n1] == first_turn["input_ids"]
    assert cut["input_ids"][n1:] == full["input_ids"][n1 : n1 + 2] + full["input_ids"][-2:]
    assert cut["labels"][n1:] == [IGNORE_INDEX] * 2 + full["labels"][-2:]
    # With 2 tokens left the split gives the answer int(2 * 2 / (prompt + 2)) = 0: the turn is dropped.
    # Exactly the first turn when the second has no room at all.
    assert encode_conversation(template, tokenizer, MESSAGES, None, cutoff_len=n1 + 2) == first_turn
    assert encode_conversation(template, tokenizer, MESSAGES, None, cutoff_len=n1) == first_turn


def test_split_budget_is_proportional_when_both_sides_are_long():
    assert split_budget(10, 5, 100) == (10, 5)
    assert split_budget(90, 10, 50) == (40, 10)  # short answer kept whole
    assert split_budget(10, 90, 50) == (10, 40)  # short prompt kept whole
    assert split_budget(20, 25, 40) == (20, 20)  # both short: the prompt wins
    assert split_budget(60, 40, 50) == (30, 20)  # both long: 60:40


def test_roles_must_alternate(tokenizer):
    bad = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    with pytest.raises(TemplateError, match="turn 1 is 'user', expected 'assistant'"):
        encode_conversation(get_template("belle"), tokenizer, bad)
    with pytest.raises(TemplateError, match="unknown template 'qwen9'; choose one of"):
        get_template("qwen9")


CHATML_JINJA = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def test_tokenizer_template_uses_the_tokenizers_chat_template(tokenizer):
    tok = copy.deepcopy(tokenizer)
    with pytest.raises(TemplateError, match="no chat_template"):
        encode_conversation("tokenizer", tok, MESSAGES, SYSTEM)
    tok.chat_template = CHATML_JINJA
    tok.add_tokens(["<|im_start|>", "<|im_end|>"], special_tokens=True)  # as in Qwen's tokenizer
    example = encode_conversation("tokenizer", tok, MESSAGES, SYSTEM, cutoff_len=4096)
    official = render_text(get_template("chatml"), MESSAGES, SYSTEM)  # ends with \n after <|im_end|>
    assert official.endswith("4<|im_end|>\n")
    assert tok.decode(example["input_ids"]) == official
    # each answer is trained up to its end marker; the newline after it is not (as with --template chatml)
    trained = [t for t in example["labels"] if t != IGNORE_INDEX]
    assert tok.decode(trained) == "Hello!<|im_end|>4<|im_end|>"
    prompt = encode_generation_prompt("tokenizer", tok, MESSAGES[:3], SYSTEM)
    assert example["input_ids"][: len(prompt)] == prompt


@pytest.mark.parametrize("name", ["alpaca", "vicuna", "qwen", "chatml", "llama2_zh", "llama3", "qwen3"])
def test_empty_system_prompt_is_no_system_prompt(name, tokenizer):
    """One rule for every record format: "" (alpaca's `"system": ""`, an empty ShareGPT/OpenAI system turn)
    renders like an absent system prompt: the template's default where it has one, else no system block."""
    template = get_template(name)
    absent = encode_conversation(template, tokenizer, MESSAGES, None, cutoff_len=4096)
    assert encode_conversation(template, tokenizer, MESSAGES, "", cutoff_len=4096) == absent
    text = render_text(template, MESSAGES, "")
    assert (template.default_system in text) if template.default_system else ("system" not in text.lower())


def test_deepseekr1_answers_inside_the_think_block_of_its_generation_prompt(tokenizer):
    """DeepSeek-R1's template drops an earlier answer's reasoning (keeping what follows </think>) and its
    generation prompt opens the think block, so the final answer is trained from the reasoning on."""
    messages = [
        {"role": "user", "content": "1+1?"},
        {"role": "assistant", "content": "<think>\nOne plus one.\n</think>\n\n2"},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "<think>\nTwo plus two.\n</think>\n\n4"},
    ]
    segments = [("<s><｜User｜>1+1?<｜Assistant｜>", False), ("\n\n2</s>", True),
                ("<｜User｜>2+2?<｜Assistant｜><think>\n", False), ("Two plus two.\n</think>\n\n4</s>", True)]  # fmt: skip
    template = get_template("deepseekr1")
    assert render_text(template, messages) == "".join(text for text, _ in segments)
    example = encode_conversation(template, tokenizer, messages, cutoff_len=4096)
    labels = []
    for text, trained in segments:
        ids = expected_ids(text, tokenizer)
        labels += ids if trained else [IGNORE_INDEX] * len(ids)
    assert example["labels"] == labels
    prompt = encode_generation_prompt(template, tokenizer, messages[:3])
    assert tokenizer.decode(prompt).endswith("<｜User｜>2+2?<｜Assistant｜><think>\n")
    assert example["input_ids"][: len(prompt)] == prompt


ONE_TURN = json.loads((Path(__file__).parent / "fixtures/templates/one_turn_no_system.json").read_text())


def whole_text_reference(segments, tokenizer) -> tuple[list[int], list[int]]:
    """The fixture's text tokenised WHOLE, as a chat template's text is tokenised, with labels from its
    segments (each segment must end on a token boundary of the whole text)."""
    text = "".join(t for t, _ in segments)
    ids = expected_ids(text, tokenizer)
    labels, start, prefix = [], 0, ""
    for segment, trained in segments:
        prefix += segment
        end = len(expected_ids(prefix, tokenizer))
        assert ids[:end] == expected_ids(prefix, tokenizer), f"segment boundary inside a token: {segment!r}"
        labels += ids[start:end] if trained is True else [IGNORE_INDEX] * (end - start)
        start = end
    return ids, labels


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("case", ["one turn, no system", "one turn, empty system", "two turns with system"])
def test_whole_text_with_the_familys_special_tokens(name, case, tokenizer):
    """With the family's special tokens as single tokens (as in the real tokenizer), the ids equal the
    official text tokenised whole, and labels are exactly the answers (Baichuan/GLM stop labels aside)."""
    fixture = FIXTURE if case.startswith("two") else ONE_TURN
    entry = fixture["templates"][name]
    tok = copy.deepcopy(tokenizer)
    tok.add_tokens(ONE_TURN["templates"][name].get("special_tokens", []), special_tokens=True)
    system = {"one turn, no system": None, "one turn, empty system": "", "two turns with system": SYSTEM}[
        case
    ]
    messages = fixture["conversation"]["messages"]
    example = encode_conversation(get_template(name), tok, messages, system, cutoff_len=4096)
    ids, labels = whole_text_reference(entry["segments"], tok)
    assert example["input_ids"] == ids
    stop = expected_ids(entry.get("stop", ""), tok)
    at = 0  # "stop" segments: the previous answer's stop label on their first token(s)
    for segment, trained in entry["segments"]:
        n = len(expected_ids(segment, tok))
        if trained == "stop":
            labels[at : at + len(stop)] = stop
        at += n
    assert example["labels"] == labels


@pytest.mark.parametrize("name", NAMES)
def test_one_token_short_cuts_the_last_turn_as_split_budget_says(name, tokenizer):
    """cutoff = full length - 1: the first turn stays whole; the last turn's prompt and answer share what is
    left (split_budget, tested above); a suffix that no longer fits is dropped whole instead."""
    template = get_template(name)
    full = encode_conversation(template, tokenizer, MESSAGES, SYSTEM, cutoff_len=4096)
    pieces = conversation_pieces_ids(template, tokenizer, MESSAGES, SYSTEM)
    cut = encode_conversation(template, tokenizer, MESSAGES, SYSTEM, cutoff_len=len(full["input_ids"]) - 1)
    if template.suffix:
        assert (cut["input_ids"], cut["labels"]) == (full["input_ids"][:-1], full["labels"][:-1])
        return
    (prompt, _), (answer, _) = pieces[2], pieces[3]
    start = len(pieces[0][0]) + len(pieces[1][0])
    keep_prompt, keep_answer = split_budget(len(prompt), len(answer), len(prompt) + len(answer) - 1)
    kept = list(range(start + keep_prompt)) + list(
        range(start + len(prompt), start + len(prompt) + keep_answer)
    )
    assert cut["input_ids"] == [full["input_ids"][i] for i in kept]
    assert cut["labels"] == [full["labels"][i] for i in kept]
    if keep_answer < len(answer):  # a cut answer never trains its stop
        assert cut["labels"][-1] == answer[-2] and answer[-1] not in cut["labels"][start + keep_prompt :]


@pytest.mark.parametrize("name", ["gemma", "gemma3"])
def test_gemma_trims_each_message_as_its_template_does(name):
    messages = [{"role": "user", "content": "  Hi \n"}, {"role": "assistant", "content": "\nHello! "}]
    assert render_text(get_template(name), messages, "Be brief.", bos="<bos>") == (
        "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n"
    )


# GLM-4-9B-chat's chat format as its model card documents it: [gMASK]<sop>, `<|role|>\n` + content per message,
# generation prompt `<|assistant|>` (written for this test).
GLM4_JINJA = (
    "[gMASK]<sop>{% for m in messages %}{% if m['role'] in ['system', 'user', 'assistant'] %}"
    "<|{{ m['role'] }}|>\n{{ m['content'] }}{% endif %}{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def test_parity_check_leaves_out_the_stop_glm_training_appends(tokenizer):
    """GLM-4 training appends <|user|> after the last answer (finetune_demo); its chat template does not
    render it, so the parity check compares everything before it, and finds the two identical."""
    from common.templates import chat_template_mismatch, parity_report

    tok = copy.deepcopy(tokenizer)
    tok.add_tokens(ONE_TURN["templates"]["glm4"]["special_tokens"], special_tokens=True)
    tok.chat_template = GLM4_JINJA
    report = parity_report(tok, "glm4")
    assert report and all(difference is None for _, difference in report)
    assert chat_template_mismatch(tok, "glm4") is None
    assert "first difference" in chat_template_mismatch(tok, "chatglm3")  # [gMASK]sop vs [gMASK]<sop>
