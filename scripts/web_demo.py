"""A browser chat with a fine-tuned model: one page, answers streamed in as they are generated.

    python scripts/web_demo.py --model_name_or_path trained_models/bloom --template belle
    python scripts/web_demo.py --model_name_or_path models/tiny-llama --adapter_name_or_path trained_models/lora-llama
    # then open http://127.0.0.1:7860 (on a remote machine: ssh -L 7860:127.0.0.1:7860 that-machine)

The page keeps the conversation; each answer's prompt is the whole conversation, rendered by the template
training used (`--template`, default: the model family's), and decoded by the same engine as scripts/api.py
(common/generation.py), so several open pages are answered in one batch. The page has a system prompt,
temperature and answer-length box, and a Clear button. It listens on 127.0.0.1 unless `--host` says otherwise
(it has no password: put it behind one before opening it to a network). Settings and defaults: `--help`.
"""

# No `from __future__ import annotations`: FastAPI reads the handlers' annotations (Request) at definition.
import asyncio
import dataclasses
import json
import logging
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a file: find `common`

from common.config import config_field, parse_config, stage_default  # noqa: E402
from common.generation import ListenSettings, ServingSettings  # noqa: E402
from common.runs import run_as_script, setup_logging  # noqa: E402
from common.settings import ModelSettings  # noqa: E402

logger = logging.getLogger("web_demo")


@dataclasses.dataclass
class WebDemoConfig(ListenSettings, ServingSettings, ModelSettings):
    port: int = stage_default(7860)
    temperature: float = config_field(0.7, "the page's starting temperature (0: greedy)")


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<style>
 body { font-family: system-ui, sans-serif; max-width: 50rem; margin: 1.5rem auto; padding: 0 1rem; }
 #log { border: 1px solid #ccc; border-radius: 6px; padding: .5rem; min-height: 14rem; }
 .turn { white-space: pre-wrap; margin: .4rem 0; padding: .4rem .6rem; border-radius: 6px; }
 .user { background: #e8f0fe; } .assistant { background: #f1f3f4; } .error { color: #b00020; }
 textarea { width: 100%; box-sizing: border-box; } label { margin-right: 1rem; }
</style></head>
<body>
<h2>__TITLE__</h2>
<p><label>System prompt <input id="system" size="40"></label>
 <label>Temperature <input id="temperature" type="number" min="0" max="2" step="0.1" value="__TEMPERATURE__"></label>
 <label>Max tokens <input id="max_tokens" type="number" min="1" value="__MAX_TOKENS__"></label></p>
<div id="log"></div>
<p><textarea id="message" rows="3" placeholder="Type a message; Enter sends, Shift+Enter is a new line"></textarea></p>
<p><button id="send">Send</button> <button id="clear">Clear</button></p>
<script>
const log = document.getElementById("log"), box = document.getElementById("message");
let history = [], busy = false;
function add(role, text) {
  const div = document.createElement("div");
  div.className = "turn " + role; div.textContent = text; log.appendChild(div); return div;
}
async function send() {
  const text = box.value.trim();
  if (!text || busy) return;
  busy = true; box.value = ""; add("user", text);
  history.push({role: "user", content: text});
  const out = add("assistant", ""); out.dataset.chunks = "0";
  let answer = "";
  try {
    const response = await fetch("chat", {method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({messages: history, system: document.getElementById("system").value || null,
        temperature: Number(document.getElementById("temperature").value),
        max_tokens: Number(document.getElementById("max_tokens").value)})});
    if (!response.ok) throw new Error((await response.json()).error);
    const reader = response.body.getReader(), decoder = new TextDecoder();
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      answer += decoder.decode(value, {stream: true});
      out.textContent = answer; out.dataset.chunks = String(Number(out.dataset.chunks) + 1);
    }
    history.push({role: "assistant", content: answer});
  } catch (err) {
    history.pop(); out.className = "turn error"; out.textContent = "error: " + err.message;
  }
  out.dataset.done = "true"; busy = false;
}
document.getElementById("send").onclick = send;
document.getElementById("clear").onclick = () => { history = []; log.textContent = ""; };
box.addEventListener("keydown", e => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); send(); } });
</script></body></html>
"""


def build_app(engine: Any, title: str, temperature: float, max_tokens: int) -> Any:
    """The page at / and its streaming endpoint POST /chat (plain text pieces of the answer)."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request
    from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse

    from common.generation import EngineOverloaded, GenerationError, SamplingParams
    from common.templates import TemplateError

    @asynccontextmanager
    async def lifespan(app: Any):
        engine.start()
        yield
        engine.close()

    app = FastAPI(title=title, lifespan=lifespan, docs_url=None, redoc_url=None)
    page = (PAGE.replace("__TITLE__", title).replace("__TEMPERATURE__", str(temperature))
            .replace("__MAX_TOKENS__", str(max_tokens)))  # fmt: skip

    @app.get("/")
    async def index() -> Any:
        return HTMLResponse(page)

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "waiting": engine.waiting, "running": engine.running}

    @app.post("/chat")
    async def chat(request: Request) -> Any:
        try:
            body = json.loads(await request.body())
            system = body.get("system") or None
            prompt_ids = engine.encode(list(body["messages"]), system)
            params = SamplingParams(max_tokens=int(body.get("max_tokens") or max_tokens),
                                    temperature=float(body.get("temperature", temperature)))  # fmt: skip
            if engine.context_length and len(prompt_ids) + params.max_tokens > engine.context_length:
                raise GenerationError(f"the conversation and max_tokens exceed the context of "
                                      f"{engine.context_length} tokens; press Clear")  # fmt: skip
            loop, events = asyncio.get_running_loop(), asyncio.Queue()
            handle = engine.submit(
                prompt_ids, params, lambda e: loop.call_soon_threadsafe(events.put_nowait, e)
            )
        except (ValueError, KeyError, TypeError, TemplateError, GenerationError) as err:
            return JSONResponse({"error": f"bad request: {err}"}, status_code=400)
        except EngineOverloaded:
            return JSONResponse({"error": "the server is busy; try again"}, status_code=503)

        async def pieces() -> Any:
            try:
                while True:
                    kind, value = await events.get()
                    if kind == "delta":
                        yield value
                    elif kind == "error":
                        yield f"\n[error: {value}]"
                        return
                    else:
                        return
            finally:
                handle.cancel()

        return StreamingResponse(pieces(), media_type="text/plain; charset=utf-8")

    return app


def main(argv: list[str] | None = None) -> None:
    setup_logging()
    # ---- Config and model ---------------------------------------------------------------------
    config = parse_config(WebDemoConfig, argv, description=__doc__)
    from common.generation import engine_from_settings

    engine = engine_from_settings(config)

    # ---- Serve --------------------------------------------------------------------------------
    import uvicorn

    title = f"Chat with {Path(config.adapter_name_or_path or config.model_name_or_path).name}"
    app = build_app(engine, title, config.temperature, config.max_tokens)
    logger.info("open http://%s:%d in a browser", config.host, config.port)
    uvicorn.run(app, host=config.host, port=config.port, log_level="warning")


if __name__ == "__main__":
    run_as_script(main)
