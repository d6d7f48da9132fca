"""An OpenAI-compatible chat server for a fine-tuned model (FastAPI + uvicorn), on common/generation.py.

    python scripts/api.py --model_name_or_path trained_models/bloom --template belle
    python scripts/api.py --model_name_or_path models/tiny-llama --adapter_name_or_path trained_models/lora-llama
    API_KEY=secret python scripts/api.py --model_name_or_path trained_models/x --host 0.0.0.0 --port 8000
    python scripts/api.py --model_name_or_path base --adapter_name_or_path qlora_out --quantization_bit 4

Any OpenAI client then talks to it (the model name is the served folder's name, see GET /v1/models):

    from openai import OpenAI
    client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="secret")   # any key when API_KEY is unset
    client.chat.completions.create(model="bloom", messages=[{"role": "user", "content": "你好"}])

Endpoints: POST /v1/chat/completions (messages, max_tokens, temperature, top_p, stop, seed, stream with
server-sent chunks ending in `data: [DONE]`, stream_options.include_usage; extensions top_k,
repetition_penalty and return_token_ids, which adds the prompt's and the answer's token ids), GET /v1/models,
and GET /health (no key needed: queue length, rows decoding, the largest batch so far).

Prompts are rendered by the same code as training (`--template`, default: the model family's). Requests
decode together in one continuously batched engine (`--max_batch_size`); when `--max_queue` requests are
already waiting, more get 503 with Retry-After. With the environment variable API_KEY set, every /v1 request
needs `Authorization: Bearer <API_KEY>` (else 401). A bad request (bad JSON, unknown role, empty or too long
conversation, bad value) gets 400 with OpenAI's error JSON. The server listens on 127.0.0.1 unless `--host`
says otherwise. Tool calls (`tools`, assistant `tool_calls`, `tool` messages) work with the templates that
have a tool format (qwen, qwen3, qwen3_nothink, tokenizer): the answer's <tool_call> blocks come back as
`tool_calls` with finish_reason "tool_calls" (a streamed answer with tools arrives in one piece at its end);
other templates answer a request with tools with 400.
Settings and defaults: `--help`.
"""

# No `from __future__ import annotations`: FastAPI reads the handlers' annotations (Request) at definition.
import asyncio
import dataclasses
import hmac
import json
import logging
import os
import re
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a file: find `common`

from common.config import config_field, parse_config  # noqa: E402
from common.generation import ListenSettings, ServingSettings  # noqa: E402
from common.runs import run_as_script, setup_logging  # noqa: E402
from common.settings import ModelSettings  # noqa: E402

logger = logging.getLogger("api")


@dataclasses.dataclass
class ApiConfig(ListenSettings, ServingSettings, ModelSettings):
    served_model_name: str | None = config_field(
        None,
        "the model's name in requests and /v1/models (null: the adapter's folder name, else the model's)",
    )


class ApiError(Exception):
    """A request the server refuses: answered as OpenAI's error JSON with this status."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def response(self) -> Any:
        from fastapi.responses import JSONResponse

        kind = {401: "authentication_error", 404: "not_found_error", 503: "server_overloaded"}
        body = {"error": {"message": self.message, "type": kind.get(self.status, "invalid_request_error"),
                          "param": self.param, "code": self.code}}  # fmt: skip
        headers = {"Retry-After": "1"} if self.status == 503 else None
        return JSONResponse(body, status_code=self.status, headers=headers)


# ---- request checking -------------------------------------------------------------------------------------


def _value(body: dict, name: str, kinds: tuple[type, ...], default: Any = None) -> Any:
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        expected = " or ".join(k.__name__ for k in kinds)
        raise ApiError(400, f"'{name}' must be {expected}, got {json.dumps(value)[:50]}", param=name)
    return value


def _text(content: Any, where: str) -> str:
    """A message's content: a string, or OpenAI's list of {"type": "text", "text": ...} parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        return "".join(str(p.get("text", "")) for p in content)
    raise ApiError(400, f"{where}.content must be a string or a list of text parts", param=where)


def conversation(messages: Any) -> tuple[str | None, list[dict[str, str]]]:
    """(system prompt, turns) from OpenAI-style messages. An assistant message with `tool_calls` becomes a
    function_call turn (the calls as JSON) and a `tool` message an observation turn, as training renders them."""
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "'messages' must be a non-empty list", param="messages")
    system, turns = None, []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise ApiError(400, f"{where} must be an object with 'role' and 'content'", param=where)
        role = message.get("role")
        if role in ("system", "developer"):
            if turns or system is not None:
                raise ApiError(400, f"{where}: a system message may only come first", param=where)
            system = _text(message.get("content"), where)
        elif role == "assistant" and message.get("tool_calls"):
            if message.get("content"):
                raise ApiError(
                    400, f"{where}: text beside tool_calls has no place in the tool format", param=where
                )
            turns.append(
                {"role": "function_call", "content": json.dumps(_calls(message["tool_calls"], where))}
            )
        elif role in ("user", "assistant"):
            turns.append({"role": role, "content": _text(message.get("content"), where)})
        elif role == "tool":
            turns.append({"role": "observation", "content": _text(message.get("content"), where)})
        else:
            raise ApiError(
                400, f"{where}.role must be system, user, assistant or tool, got {role!r}", param=where
            )
    return system, turns


def _calls(tool_calls: Any, where: str) -> list[dict[str, Any]]:
    """OpenAI's tool_calls as the template's [{"name", "arguments"}]."""
    calls = []
    for call in tool_calls if isinstance(tool_calls, list) else [None]:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise ApiError(400, f"{where}.tool_calls: each call needs function.name", param=where)
        try:
            arguments = json.loads(function.get("arguments") or "{}")
        except (TypeError, json.JSONDecodeError):
            raise ApiError(
                400, f"{where}.tool_calls: function.arguments must be a JSON string", param=where
            ) from None
        calls.append({"name": function["name"], "arguments": arguments})
    return calls


TOOL_CALL = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)


def split_tool_calls(text: str) -> tuple[str | None, list[dict[str, Any]]]:
    """(text before the calls or None, OpenAI tool_calls) of an answer in Qwen's tool format; no calls when
    any of them is not JSON with a name (then the whole answer stays text)."""
    calls = []
    for raw in TOOL_CALL.findall(text):
        try:
            call = json.loads(raw)
        except json.JSONDecodeError:
            return text, []
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            return text, []
        calls.append({"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function", "function": {
            "name": call["name"], "arguments": json.dumps(call.get("arguments", {}), ensure_ascii=False)}})  # fmt: skip
    if not calls:
        return text, []
    before = text[: text.index("<tool_call>")].strip()
    return before or None, calls


def sampling_params(body: dict, prompt_len: int, engine: Any, default_max_tokens: int) -> Any:
    """The request's SamplingParams, each value checked; 400 names the first bad one."""
    from common.generation import SamplingParams

    if _value(body, "n", (int,), 1) != 1:
        raise ApiError(400, "only n=1 is supported", param="n")
    if body.get("functions"):
        raise ApiError(400, "'functions' is the old form; send 'tools'", param="functions")
    if body.get("logprobs"):
        raise ApiError(400, "logprobs are not supported", param="logprobs")
    for name in ("frequency_penalty", "presence_penalty"):
        if _value(body, name, (int, float), 0) != 0:
            raise ApiError(400, f"'{name}' is not supported (use repetition_penalty)", param=name)
    room = engine.context_length - prompt_len if engine.context_length else None
    if room is not None and room < 1:
        raise ApiError(400, f"the conversation is {prompt_len} tokens; this model's context holds "
                            f"{engine.context_length}", param="messages", code="context_length_exceeded")  # fmt: skip
    requested = _value(body, "max_completion_tokens", (int,)) or _value(body, "max_tokens", (int,))
    if requested is not None and requested < 1:
        raise ApiError(400, "max_tokens must be at least 1", param="max_tokens")
    if requested is not None and room is not None and requested > room:
        raise ApiError(400, f"the conversation ({prompt_len} tokens) and max_tokens ({requested}) exceed this "
                            f"model's context of {engine.context_length} tokens", param="max_tokens",
                       code="context_length_exceeded")  # fmt: skip
    max_tokens = requested or min(default_max_tokens, room or default_max_tokens)
    temperature = float(_value(body, "temperature", (int, float), 1.0))
    if not 0 <= temperature <= 2:
        raise ApiError(400, "temperature must be between 0 and 2", param="temperature")
    top_p = float(_value(body, "top_p", (int, float), 1.0))
    if not 0 < top_p <= 1:
        raise ApiError(400, "top_p must be in (0, 1]", param="top_p")
    stop = _value(body, "stop", (str, list), [])
    stop = [stop] if isinstance(stop, str) else stop
    if len(stop) > 4 or not all(isinstance(s, str) and s for s in stop):
        raise ApiError(400, "'stop' must be a string or a list of at most 4 non-empty strings", param="stop")
    top_k = _value(body, "top_k", (int,), 0)
    penalty = float(_value(body, "repetition_penalty", (int, float), 1.0))
    if top_k < 0 or penalty <= 0:
        raise ApiError(400, "top_k must be >= 0 and repetition_penalty > 0")
    return SamplingParams(max_tokens=max_tokens, temperature=temperature, top_p=top_p, top_k=top_k,
                          repetition_penalty=penalty, seed=_value(body, "seed", (int,)), stop=tuple(stop))  # fmt: skip


# ---- the app ----------------------------------------------------------------------------------------------


def build_app(engine: Any, model_name: str, default_max_tokens: int, api_key: str | None) -> Any:
    """The FastAPI app serving `engine` (started and closed with the app)."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.exceptions import HTTPException

    from common.generation import EngineOverloaded, GenerationError
    from common.templates import TemplateError

    @asynccontextmanager
    async def lifespan(app: Any):
        engine.start()
        yield
        engine.close()

    app = FastAPI(title="belle-finetune API", lifespan=lifespan, docs_url=None, redoc_url=None)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, err: ApiError) -> Any:
        return err.response()

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> Any:
        return ApiError(err.status_code, str(err.detail)).response()

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, err: RequestValidationError) -> Any:
        return ApiError(400, f"invalid request: {err.errors()[:1]}").response()

    @app.exception_handler(Exception)
    async def unexpected(request: Request, err: Exception) -> Any:
        logger.exception("unexpected error")
        return JSONResponse({"error": {"message": f"internal error: {type(err).__name__}", "type": "server_error",
                                       "param": None, "code": None}}, status_code=500)  # fmt: skip

    def check_key(request: Request) -> None:
        if api_key is None:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
            raise ApiError(
                401, "missing or wrong API key (Authorization: Bearer <API_KEY>)", code="invalid_api_key"
            )

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "waiting": engine.waiting, "running": engine.running,
                "peak_batch": engine.peak_batch}  # fmt: skip

    @app.get("/v1/models")
    async def models(request: Request) -> dict:
        check_key(request)
        return {"object": "list", "data": [model_card()]}

    def model_card() -> dict:
        return {"id": model_name, "object": "model", "created": created, "owned_by": "belle-finetune"}

    created = int(time.time())

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        check_key(request)
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ApiError(400, f"the request body is not valid JSON: {err}") from None
        if not isinstance(body, dict):
            raise ApiError(400, "the request body must be a JSON object")
        requested_model = _value(body, "model", (str,))
        if requested_model is None:
            raise ApiError(400, "'model' is required", param="model")
        if requested_model != model_name:
            raise ApiError(404, f"the model {requested_model!r} is not served here; this server has {model_name!r}",
                           param="model", code="model_not_found")  # fmt: skip
        system, turns = conversation(body.get("messages"))
        tools = body.get("tools") or None  # rendered by templates with a tool format (qwen, qwen3)
        if tools is not None and body.get("tool_choice") not in (None, "auto"):
            raise ApiError(400, "only tool_choice 'auto' is supported", param="tool_choice")
        try:
            prompt_ids = engine.encode(turns, system, tools)
        except TemplateError as err:
            raise ApiError(400, f"messages: {err}", param="messages") from None
        params = sampling_params(body, len(prompt_ids), engine, default_max_tokens)
        stream = _value(body, "stream", (bool,), False)
        include_usage = bool((_value(body, "stream_options", (dict,), {}) or {}).get("include_usage"))
        with_ids = _value(body, "return_token_ids", (bool,), False)

        loop, events = asyncio.get_running_loop(), asyncio.Queue()

        def on_event(event: Any) -> None:
            try:
                loop.call_soon_threadsafe(events.put_nowait, event)
            except RuntimeError:  # the loop has closed (shutting down): nobody is waiting any more
                pass

        try:
            handle = engine.submit(prompt_ids, params, on_event)
        except EngineOverloaded as err:
            raise ApiError(
                503, f"the server is overloaded ({err}); retry shortly", code="server_overloaded"
            ) from None
        except GenerationError as err:
            raise ApiError(400, str(err)) from None
        request_id, now = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

        def usage(completion: Any) -> dict:
            n = len(completion.token_ids)
            return {
                "prompt_tokens": len(prompt_ids),
                "completion_tokens": n,
                "total_tokens": len(prompt_ids) + n,
            }

        def reply(completion: Any) -> tuple[dict, str]:
            """The assistant message and finish reason; with tools, calls in the answer become tool_calls."""
            content, calls = split_tool_calls(completion.text) if tools else (completion.text, [])
            if calls:
                return {"role": "assistant", "content": content, "tool_calls": calls}, "tool_calls"
            return {"role": "assistant", "content": completion.text}, completion.finish_reason

        if not stream:
            try:
                while True:
                    kind, value = await events.get()
                    if kind == "error":
                        return ApiError(500, value).response()
                    if kind == "done":
                        break
            finally:
                handle.cancel()
            message, finish = reply(value)
            answer = {
                "id": request_id, "object": "chat.completion", "created": now, "model": model_name,
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                "usage": usage(value),
            }  # fmt: skip
            if with_ids:
                answer["prompt_token_ids"] = prompt_ids
                answer["choices"][0]["token_ids"] = value.token_ids
            return answer

        def chunk(delta: dict, finish: str | None = None, **extra: Any) -> str:
            data = {"id": request_id, "object": "chat.completion.chunk", "created": now, "model": model_name,
                    "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}], **extra}  # fmt: skip
            return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

        async def sse() -> Any:
            try:
                yield chunk({"role": "assistant", "content": ""})
                while True:
                    kind, value = await events.get()
                    if kind == "delta" and not tools:
                        yield chunk({"content": value})
                    elif kind == "error":
                        error = {"message": value, "type": "server_error", "param": None, "code": None}
                        yield f"data: {json.dumps({'error': error})}\n\n"
                        break
                    elif kind == "done":
                        extra = (
                            {"prompt_token_ids": prompt_ids, "token_ids": value.token_ids} if with_ids else {}
                        )
                        finish = value.finish_reason
                        if tools:  # an answer that may hold tool calls is sent whole, once it is complete
                            message, finish = reply(value)
                            calls = [{"index": k, **c} for k, c in enumerate(message.get("tool_calls", []))]
                            yield chunk(
                                {"content": message["content"], **({"tool_calls": calls} if calls else {})}
                            )
                        yield chunk({}, finish, **extra)
                        if include_usage:
                            data = {"id": request_id, "object": "chat.completion.chunk", "created": now,
                                    "model": model_name, "choices": [], "usage": usage(value)}  # fmt: skip
                            yield f"data: {json.dumps(data)}\n\n"
                        break
                yield "data: [DONE]\n\n"
            finally:  # also when the client went away mid-stream: free its place in the batch
                handle.cancel()

        return StreamingResponse(sse(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    return app


def main(argv: list[str] | None = None) -> None:
    setup_logging()
    # ---- Config -------------------------------------------------------------------------------
    config = parse_config(ApiConfig, argv, description=__doc__)
    name = config.served_model_name or Path(config.adapter_name_or_path or config.model_name_or_path).name
    api_key = os.environ.get("API_KEY") or None
    if config.host not in ("127.0.0.1", "localhost", "::1") and api_key is None:
        logger.warning(
            "listening on %s without API_KEY: anyone who reaches this port can use the model", config.host
        )

    # ---- Model --------------------------------------------------------------------------------
    from common.generation import engine_from_settings

    engine = engine_from_settings(config)

    # ---- Serve --------------------------------------------------------------------------------
    import uvicorn

    app = build_app(engine, name, config.max_tokens, api_key)
    logger.info("serving %r at http://%s:%d/v1 (%s)", name, config.host, config.port,
                "API key required" if api_key else "no API key")  # fmt: skip
    uvicorn.run(app, host=config.host, port=config.port, log_level="warning")


if __name__ == "__main__":
    run_as_script(main)
