"""KTO data (LLaMA-Factory's kto_tag) loads as labelled completions and SFT refuses it; tool-call
conversations (ShareGPT function_call / observation turns and a tools column) normalise to one shape."""

from __future__ import annotations

import inspect
import json
import re

import pytest

from common.data import (
    DataError,
    load_dataset_info,
    load_kto_records,
    load_normalised,
    load_tokenised,
    spec_from_path,
)
from common.modeling import load_tokenizer


def write_lines(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def turns(*pairs, role="role", content="content"):
    return [{role: r, content: c} for r, c in pairs]


KTO_ROWS = [
    {"messages": turns(("user", "hi"), ("assistant", "hello"), ("user", "2+2?"), ("assistant", "4")),
     "label": True},
    {"messages": turns(("system", "be brief"), ("user", "2+3?"), ("assistant", "6")), "label": False},
]  # fmt: skip


def test_kto_loader_yields_prompt_completion_label(tmp_path):
    path = write_lines(tmp_path / "kto.json", KTO_ROWS)
    first, second = load_kto_records(path)
    assert first["messages"] == turns(("user", "hi"), ("assistant", "hello"), ("user", "2+2?"))
    assert (first["completion"], first["label"], first["system"]) == ("4", True, None)
    assert (second["messages"], second["completion"], second["label"]) == (
        turns(("user", "2+3?")),
        "6",
        False,
    )
    assert second["system"] == "be brief"
    assert first["_where"] == f"{path}:1"


def test_kto_registry_entry_alpaca_and_sharegpt(tmp_path):
    write_lines(tmp_path / "kto_alpaca.json", [
        {"instruction": "say hi", "input": "", "output": "hi", "kto_tag": True},
        {"instruction": "say hi", "input": "", "output": "go away", "kto_tag": False},
        {"instruction": "say hi", "input": "", "output": "hm", "kto_tag": "yes"},
    ])  # fmt: skip
    write_lines(tmp_path / "kto_sharegpt.json", KTO_ROWS)
    (tmp_path / "dataset_info.json").write_text(json.dumps({
        "kto_alpaca": {"file_name": "kto_alpaca.json",
                       "columns": {"prompt": "instruction", "query": "input", "response": "output",
                                   "kto_tag": "kto_tag"}},
        "kto_sharegpt": {"file_name": "kto_sharegpt.json", "formatting": "sharegpt",
                         "columns": {"messages": "messages", "kto_tag": "label"},
                         "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                                  "assistant_tag": "assistant"}},
        "plain": {"file_name": "kto_alpaca.json"},
    }))  # fmt: skip
    with pytest.raises(
        DataError, match=r"kto_alpaca.json:3: 'kto_tag' \(the KTO label\) must be true or false"
    ):
        load_kto_records("kto_alpaca", tmp_path)
    kept = load_kto_records("kto_alpaca", tmp_path, skip_bad_records=True)
    assert [(r["messages"][-1]["content"], r["completion"], r["label"]) for r in kept] == [
        ("say hi", "hi", True),
        ("say hi", "go away", False),
    ]
    assert [r["label"] for r in load_kto_records("kto_sharegpt", tmp_path)] == [True, False]
    with pytest.raises(DataError, match="dataset 'plain' is not KTO data"):
        load_kto_records("plain", tmp_path)


def test_sft_refuses_kto_data_before_training(tmp_path, tiny_llama):
    path = write_lines(tmp_path / "kto.json", KTO_ROWS)
    tokenizer = load_tokenizer(str(tiny_llama))
    with pytest.raises(DataError, match="is KTO data .*would learn the undesirable answers too"):
        load_tokenised([spec_from_path(path)], tokenizer, "belle", 64)


TOOLS = [{"name": "get_weather", "description": "weather now", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]  # fmt: skip
CALL = {"name": "get_weather", "arguments": {"city": "Paris"}}


def tool_conversation(call: object, tools: object) -> dict:
    return {
        "conversations": [
            {"from": "human", "value": "Weather in Paris?"},
            {"from": "function_call", "value": call},
            {"from": "observation", "value": '{"temp": 21}'},
            {"from": "gpt", "value": "It is 21 degrees."},
        ],
        "tools": tools,
    }


def test_tool_calls_normalise_to_json_strings(tmp_path):
    path = write_lines(tmp_path / "tools.json", [
        tool_conversation(json.dumps(CALL), json.dumps(TOOLS)),  # LLaMA-Factory: JSON strings
        tool_conversation(CALL, TOOLS),  # objects are accepted and serialised
        {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]},
    ])  # fmt: skip
    first, second, plain = load_normalised(spec_from_path(path))
    assert [m["role"] for m in first["messages"]] == ["user", "function_call", "observation", "assistant"]
    assert json.loads(first["messages"][1]["content"]) == CALL and json.loads(first["tools"]) == TOOLS
    assert first["messages"][2]["content"] == '{"temp": 21}'
    assert (json.loads(second["messages"][1]["content"]), json.loads(second["tools"])) == (CALL, TOOLS)
    assert plain["tools"] is None and plain["messages"][1] == {"role": "assistant", "content": "hello"}


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (tool_conversation("{not json", None), "tools.json:1: turn 1: the function call is not valid JSON"),
        (tool_conversation(json.dumps(CALL), "[{oops"), "tools.json:1: 'tools' is not valid JSON"),
        ({"conversations": [{"from": "observation", "value": "x"}, {"from": "gpt", "value": "y"}]},
         "tools.json:1: turn 0 is 'observation': a conversation starts with the user"),
        ({"conversations": [{"from": "human", "value": "x"}, {"from": "observation", "value": "y"}]},
         "tools.json:1: turn 1 is 'observation' where 'assistant' was expected"),
    ],
)  # fmt: skip
def test_bad_tool_records_are_named(tmp_path, row, message):
    path = write_lines(tmp_path / "tools.json", [row])
    with pytest.raises(DataError) as err:
        load_normalised(spec_from_path(path))
    assert message in str(err.value)


def test_registry_tags_name_the_tool_roles(tmp_path):
    rows = [{"msgs": [{"who": "u", "text": "weather?"}, {"who": "call", "text": json.dumps(CALL)},
                      {"who": "tool", "text": "sunny"}, {"who": "a", "text": "Sunny."}], "fns": json.dumps(TOOLS)}]  # fmt: skip
    write_lines(tmp_path / "t.json", rows)
    (tmp_path / "dataset_info.json").write_text(json.dumps({"t": {
        "file_name": "t.json", "formatting": "sharegpt", "columns": {"messages": "msgs", "tools": "fns"},
        "tags": {"role_tag": "who", "content_tag": "text", "user_tag": "u", "assistant_tag": "a",
                 "function_tag": "call", "observation_tag": "tool"}}}))  # fmt: skip
    [record] = load_normalised(load_dataset_info(tmp_path)["t"], tmp_path)
    assert [m["role"] for m in record["messages"]] == ["user", "function_call", "observation", "assistant"]
    assert json.loads(record["tools"]) == TOOLS


def test_tool_conversation_trains_the_call_and_answer_not_the_result(tmp_path, tiny_llama):
    """End to end through the loader once common/templates.py renders tools (issue #13)."""
    from common.data import mark_trained
    from common.templates import encode_conversation

    if "tools" not in inspect.signature(encode_conversation).parameters:
        pytest.skip("common/templates.py renders no tools yet (issue #13)")
    path = write_lines(tmp_path / "tools.json", [tool_conversation(json.dumps(CALL), json.dumps(TOOLS))])
    tokenizer = load_tokenizer(str(tiny_llama))
    [example] = load_tokenised([spec_from_path(path)], tokenizer, "qwen", 1024)
    marked = mark_trained(example, tokenizer)
    call, answer = re.findall(r"【(.*?)】", marked, flags=re.S)
    assert '"name": "get_weather"' in call and '"city": "Paris"' in call
    assert answer.startswith("It is 21 degrees.")
    assert '{"temp": 21}' in marked and '"temp"' not in call + answer  # the tool's result is not trained
    assert '"description": "weather now"' in marked.split("Weather in Paris?")[0]  # tools before the question
    with pytest.raises(DataError, match="'belle'"):
        load_tokenised([spec_from_path(path)], tokenizer, "belle", 1024)


def test_preference_pairs_with_tools_are_refused_until_rendered(tmp_path, tiny_llama):
    import common.templates
    from common.data import load_preference_records, tokenise_preferences

    if "tools" in inspect.signature(common.templates.encode_preference_pair).parameters:
        pytest.skip("encode_preference_pair renders tools now: nothing to refuse")
    row = {"conversations": [{"from": "human", "value": "weather?"}], "chosen": {"from": "gpt", "value": "sun"},
           "rejected": {"from": "gpt", "value": "no"}, "tools": json.dumps(TOOLS)}  # fmt: skip
    pairs = load_preference_records(write_lines(tmp_path / "p.json", [row]))
    assert json.loads(pairs[0]["tools"]) == TOOLS
    with pytest.raises(
        DataError, match=r"p.json:1: the pair defines tools, which preference pairs cannot render"
    ):
        tokenise_preferences(pairs, load_tokenizer(str(tiny_llama)), "qwen", 64)


def test_openai_tool_calls_and_tool_results(tmp_path):
    openai_tools = [{"type": "function", "function": TOOLS[0]}]
    call = {
        "id": "c1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    question, result = (
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "tool", "content": '{"temp": 21}'},
    )
    answer = {"role": "assistant", "content": "It is 21 degrees."}

    def row(*calls: dict, text: str | None = None) -> dict:
        calling = {"role": "assistant", "content": text, "tool_calls": list(calls)}
        return {"messages": [question, calling, result, answer], "tools": openai_tools}

    single, parallel = load_normalised(
        spec_from_path(write_lines(tmp_path / "o.json", [row(call), row(call, call)]))
    )
    assert [m["role"] for m in single["messages"]] == ["user", "function_call", "observation", "assistant"]
    assert json.loads(single["messages"][1]["content"]) == CALL
    assert single["messages"][2]["content"] == '{"temp": 21}'
    assert json.loads(parallel["messages"][1]["content"]) == [CALL, CALL]
    assert json.loads(single["tools"]) == openai_tools
    with pytest.raises(DataError, match="o2.json:1: turn 1: an assistant turn with both text and tool_calls"):
        load_normalised(spec_from_path(write_lines(tmp_path / "o2.json", [row(call, text="Let me look.")])))
