"""One generation engine for generate.py, the API server, the terminal and web chats, and PPO's rollouts.

Prompts are rendered by `common.templates.encode_generation_prompt`, the code training uses, so a served
model sees exactly the token ids it was trained on. Decoding is continuous batching over a Hugging Face
causal LM and its ordinary KV cache:

- up to `max_batch_size` sequences decode together, one token each per forward pass;
- a finished sequence leaves the batch at once and a waiting request takes its place: its prompt is run on
  its own (prefill, left-padded with the other newcomers) and its cache is joined to the running batch,
  left-padded to the same width; position ids count each row from its own first real token, so a row's
  logits do not depend on its neighbours or on the padding (BLOOM's ALiBi reads the attention mask);
- offline work (`generate`) is admitted longest prompt first, so rows of similar length share a batch and
  the memory peak comes first; the results come back in the caller's order;
- on a GPU, for full-attention models, the batch is instead a fixed set of rows over a static KV cache
  (`_StaticSlots`), whose decode step is compiled once into a CUDA graph: the same joining and leaving, with
  a newcomer's prefilled cache copied into a free row (decode="dynamic" keeps the growing batch).

Every request has its own SamplingParams: max_tokens, temperature (0: greedy), top_p, top_k, repetition
penalty, stop strings and a seed (a seeded request draws from its own generator, so its answer does not
depend on what else is in the batch). Generation ends at the template's stop tokens and the model's eos.

transformers 5.23's own continuous batching (`generate_batch`, paged attention) was tried on CPU: the tiny
Llama's greedy tokens matched, but its cache sizing made the first request take 18 s unless sized by hand,
a step ran ~7x slower than plain generate() on the tiny models, BLOOM cannot switch to its paged attention,
and there is no per-request seed. It is not used.

`Engine` is the interface the scripts use (`encode`, `generate`, `submit`, `start`, `close`); `load_engine`
builds the one backend shipped, `HFEngine`. Another backend (vLLM, SGLang) would implement `Engine`; none is
shipped because none can be tested here.

    python -c "from common.generation import load_engine; e = load_engine('models/tiny-llama'); \\
        print(e.chat([{'role': 'user', 'content': 'hi'}]).text)"
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from common.config import ConfigError, Settings, config_field
from common.settings import PrecisionSettings

logger = logging.getLogger(__name__)


class GenerationError(ValueError):
    """A request the engine cannot serve (bad sampling settings, prompt too long); the message says why."""


class EngineOverloaded(RuntimeError):
    """The engine's queue of waiting requests is full; try again later."""


@dataclasses.dataclass(frozen=True)
class SamplingParams:
    """How one request is decoded."""

    max_tokens: int = 256  # most new tokens
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    top_k: int = 0  # 0: off
    repetition_penalty: float = 1.0  # > 1 discourages tokens already in the prompt or answer
    seed: int | None = None  # a sampled request with a seed draws from its own generator
    stop: tuple[str, ...] = ()  # the answer ends before the first of these strings

    def check(self) -> None:
        if self.max_tokens < 1:
            raise GenerationError(f"max_tokens must be at least 1, got {self.max_tokens}")
        if not all(math.isfinite(x) for x in (self.temperature, self.top_p, self.repetition_penalty)):
            raise GenerationError("temperature, top_p and repetition_penalty must be finite numbers")
        if self.temperature < 0:
            raise GenerationError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise GenerationError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise GenerationError(f"top_k must be >= 0, got {self.top_k}")
        if self.repetition_penalty <= 0:
            raise GenerationError(f"repetition_penalty must be > 0, got {self.repetition_penalty}")
        if any(not isinstance(s, str) or not s for s in self.stop):
            raise GenerationError("stop strings must be non-empty strings")
        if self.seed is not None and not 0 <= self.seed < 2**63:
            raise GenerationError(f"seed must be in [0, 2**63), got {self.seed}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclasses.dataclass
class Completion:
    """One finished request."""

    prompt_ids: list[int]
    token_ids: list[int]  # the generated ids, the stop token included when one ended the answer
    text: str  # the answer, without the stop token or stop string
    finish_reason: str  # "stop" (stop token or string) or "length" (max_tokens or the context ran out)
    first_token_at: float = 0.0  # time.perf_counter() when the first token was ready


Event = tuple[str, Any]  # ("delta", text), ("done", Completion) or ("error", message)


class RequestHandle:
    """A submitted request: `cancel()` drops it; `events()` (when submitted without a callback) yields its
    events until ("done", ...) or ("error", ...)."""

    def __init__(self, on_event: Callable[[Event], None] | None) -> None:
        self._queue: queue.Queue[Event] | None = None if on_event else queue.Queue()
        self._on_event = on_event or self._queue.put  # type: ignore[union-attr]
        self.cancelled = False

    def emit(self, event: Event) -> None:
        self._on_event(event)

    def cancel(self) -> None:
        self.cancelled = True

    def events(self) -> Iterator[Event]:
        assert self._queue is not None, "events() is for requests submitted without on_event"
        while True:
            event = self._queue.get()
            yield event
            if event[0] in ("done", "error"):
                return


class Engine:
    """What every backend offers. Prompts are token ids from `encode`."""

    tokenizer: Any
    context_length: int | None  # most tokens (prompt + answer) a sequence may hold; None: no known limit

    def encode(
        self, messages: list[dict[str, str]], system: str | None = None, tools: Any = None
    ) -> list[int]:
        """Prompt ids of a conversation ending on a user (or tool-result) turn; `tools` for templates with
        a tool-call format."""
        raise NotImplementedError

    def generate(
        self, prompts: Sequence[list[int]], params: SamplingParams | Sequence[SamplingParams], progress=False
    ) -> list[Completion]:
        """Every prompt to completion, batched as the backend likes; results in the prompts' order."""
        raise NotImplementedError

    def submit(
        self, prompt_ids: list[int], params: SamplingParams, on_event: Callable[[Event], None] | None = None
    ) -> RequestHandle:
        """Queue one request (served once `start()` has run); raises EngineOverloaded when the queue is
        full. `on_event` is called from the engine's thread with each event."""
        raise NotImplementedError

    def start(self) -> None:
        """Serve submitted requests from a background thread."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def chat(self, messages, system=None, params: SamplingParams | None = None) -> Completion:
        """One answer to a conversation (a convenience for scripts and tests)."""
        return self.generate([self.encode(messages, system)], params or SamplingParams())[0]

    def stream(self, prompt_ids: list[int], params: SamplingParams) -> Iterator[str]:
        """The answer's text pieces as they are generated (the engine must be started)."""
        handle = self.submit(prompt_ids, params)
        try:
            for kind, value in handle.events():
                if kind == "delta":
                    yield value
                elif kind == "error":
                    raise GenerationError(value)
        finally:
            handle.cancel()


# ---- one sequence in the batch -------------------------------------------------------------------------


class _Sequence:
    """A request's state while it decodes: its tokens, sampling generator and incremental text."""

    def __init__(self, prompt_ids: list[int], params: SamplingParams, handle: RequestHandle | None,
                 index: int, stream: bool) -> None:  # fmt: skip
        self.prompt_ids, self.params, self.handle, self.index = prompt_ids, params, handle, index
        self.stream = stream  # decode text as it comes (streaming or stop strings)
        self.tokens: list[int] = []
        self.generator: Any = None
        self.text = ""  # decoded so far (stream only)
        self.sent = 0  # characters of `text` already emitted
        self._prefix = self._read = 0  # incremental detokenisation window
        self.first_token_at = 0.0
        self.finished: str | None = None
        self.stop_at: int | None = None  # where a stop string starts in `text`
        self.lead_checked = False  # whether the template's answer lead was taken off the text's start


class _StaticSlots:
    """A fixed batch of `slots` rows over a static KV cache of `length` columns, decoded by one compiled graph.

    Every row writes its next token's keys and values in the same column, `column`; a newcomer's prefilled
    prompt is copied into a free row so that it ends just before that column, left-padded with masked
    columns. A row keeps its own position ids, so its logits do not depend on where it sits. When the columns
    run out, everything moves left by the oldest row's start (`shift`); a newcomer wider than `column` moves
    everything right. Free rows still run (their output is ignored): the graph's shapes never change, so on a
    GPU it is compiled once with CUDA graphs ("reduce-overhead"), which replays a decode step without
    launching each kernel from Python; that launching, not the GPU, is what bounds eager decoding of small
    models. Kept on the model (`_static_slots_for`), so PPO's per-rollout engines share one compilation."""

    def __init__(self, model: Any, slots: int, length: int, compile_step: bool) -> None:
        import torch
        from transformers import StaticCache

        self.model, self.slots, self.length = model, slots, length
        device = next(model.parameters()).device
        # The layers' tensors are made at the first join, shaped and typed like the prefilled cache (the model's
        # dtype, or autocast's; DeepSeek's keys and values differ in width).
        self.cache = StaticCache(config=model.config, max_cache_len=length)
        self.mask = torch.zeros((slots, length), dtype=torch.bool, device=device)
        self.positions = torch.zeros(slots, dtype=torch.long, device=device)
        self.next = torch.zeros(slots, dtype=torch.long, device=device)
        self.rows: list[_Sequence | None] = [None] * slots
        self.starts = [0] * slots  # the column of each row's first real token
        self.column = 0
        self.decode = torch.compile(self._decode, mode="reduce-overhead", dynamic=False) if compile_step else (
            self._decode
        )  # fmt: skip

    @staticmethod
    def supports(model: Any) -> bool:
        """Plain full-attention decoders whose forward transformers can compile with a static cache (LLaMA,
        Qwen, Mistral...): not sliding-window or recurrent layers, not ZeRO-3 shards or quantised weights."""
        from transformers import StaticCache
        from transformers.cache_utils import StaticLayer

        base = _base_model(model)
        if not getattr(base, "_can_compile_fullgraph", False) or getattr(base, "hf_quantizer", None) is not None:
            return False
        if any(hasattr(p, "ds_id") for p in model.parameters()):
            return False
        try:
            layers = StaticCache(config=base.config, max_cache_len=8).layers
        except Exception:  # a config StaticCache cannot read
            return False
        return all(type(layer) is StaticLayer for layer in layers)

    def _decode(self, ids: Any, mask: Any, positions: Any) -> Any:
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=self.cache,
                         use_cache=True, logits_to_keep=1)  # fmt: skip
        return out.logits[:, -1, :].float()

    def reset(self) -> None:
        self.rows = [None] * self.slots
        self.mask.zero_()
        self.column = 0

    def _set_column(self, column: int) -> None:
        self.column = column
        for layer in self.cache.layers:
            layer.cumulative_length.fill_(column)

    def shift(self, delta: int) -> None:
        """Move every row's cache columns by `delta` (in place: the compiled graph holds these tensors)."""
        for layer in self.cache.layers:
            layer.keys.copy_(layer.keys.roll(delta, dims=2))
            layer.values.copy_(layer.values.roll(delta, dims=2))
        self.mask.copy_(self.mask.roll(delta, dims=1))
        if delta > 0:
            self.mask[:, :delta] = False
        else:
            self.mask[:, self.length + delta :] = False
        self.starts = [start + delta for start in self.starts]
        self._set_column(self.column + delta)

    def join(self, newcomers: list[_Sequence], cache: Any, mask: Any, next_tokens: Any) -> None:
        """Copy the newcomers' prefilled cache (left-padded to one width) into free rows, ending before `column`."""
        import torch

        width = mask.shape[1]
        for layer, new in zip(self.cache.layers, cache.layers, strict=True):
            ready = getattr(layer, "is_initialized", False) and (layer.keys.dtype, layer.values.dtype) == (
                new.keys.dtype, new.values.dtype)  # fmt: skip
            if not ready:
                with torch.no_grad():  # (again if autocast changed the dtype: then the step compiles again)
                    keys = new.keys.new_zeros((self.slots, *new.keys.shape[1:2], 1, new.keys.shape[-1]))
                    values = new.values.new_zeros((self.slots, *new.values.shape[1:2], 1, new.values.shape[-1]))
                    layer.lazy_initialization(keys, values)
                    if layer.values.dtype != values.dtype:
                        layer.values = torch.zeros_like(layer.values, dtype=values.dtype)
                        torch._dynamo.mark_static_address(layer.values)
                    layer.__class__ = _casting_static_layer()
        if not any(self.rows):
            self.mask.zero_()
            self._set_column(width)
        elif width > self.column:
            self.shift(width - self.column)
        free = [i for i, row in enumerate(self.rows) if row is None][: len(newcomers)]
        index = torch.tensor(free, device=self.mask.device)
        start = self.column - width
        for layer, new in zip(self.cache.layers, cache.layers, strict=True):
            layer.keys[index, :, start : self.column] = new.keys
            layer.values[index, :, start : self.column] = new.values
        self.mask[index] = False
        self.mask[index, start : self.column] = mask.bool()
        self.positions[index] = mask.sum(-1)
        self.next[index] = next_tokens
        for slot, seq in zip(free, newcomers, strict=True):
            self.rows[slot] = seq
            self.starts[slot] = self.column - len(seq.prompt_ids)

    def step(self) -> tuple[Any, list[int]]:
        """One decode step of every row: the logits of the occupied rows, and which rows those are."""
        import torch

        live = [i for i, row in enumerate(self.rows) if row is not None]
        if self.column >= self.length:  # out of columns: drop the ones before the oldest row's first token
            self.shift(-min(self.starts[i] for i in live))
        self.mask[:, self.column] = True  # free rows attend to their own column: no empty softmax
        if self.decode is not self._decode:
            torch.compiler.cudagraph_mark_step_begin()
        with torch.no_grad():
            try:
                logits = self.decode(self.next[:, None], self.mask, self.positions[:, None])
            except Exception:
                if self.decode is self._decode:
                    raise
                # Compilation is an optimisation: a model or torch version it fails on still decodes, eagerly.
                logger.exception("compiling the decode step failed; decoding without compilation")
                self.decode = self._decode
                self._set_column(self.column)
                logits = self.decode(self.next[:, None], self.mask, self.positions[:, None])
        self.positions += 1
        self.column += 1
        return logits[live] if len(live) < self.slots else logits.clone(), live


@functools.cache
def _casting_static_layer() -> type:
    """transformers' StaticLayer, storing what it is given in its own dtypes. Under autocast a growing cache
    keeps the prefill's fp32 (torch.cat promotes each step's bf16 values to it); a static one takes that
    dtype from the prefill, and each decode step's bf16 values are cast to it (exactly) on the way in."""
    from transformers.cache_utils import StaticLayer

    class CastingStaticLayer(StaticLayer):
        def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> Any:
            return super().update(key_states.to(self.keys.dtype), value_states.to(self.values.dtype), *args,
                                  **kwargs)  # fmt: skip

    return CastingStaticLayer


_STATIC_SLOTS: Any = None  # model -> _StaticSlots (a WeakKeyDictionary, made on first use)


def _static_slots_for(model: Any, slots: int, length: int, compile_step: bool) -> _StaticSlots:
    """The model's static batch of at least `slots` rows and `length` columns (made once, then reused)."""
    import weakref

    global _STATIC_SLOTS
    if _STATIC_SLOTS is None:
        _STATIC_SLOTS = weakref.WeakKeyDictionary()
    current = _STATIC_SLOTS.get(model)
    if current is None or current.slots < slots or current.length < length:
        if current is not None:
            slots, length = max(slots, current.slots), max(length, current.length)
        current = _STATIC_SLOTS[model] = _StaticSlots(model, slots, length, compile_step)
    current.reset()
    return current


class HFEngine(Engine):
    """Continuous batching over a transformers causal LM (plain, PEFT-wrapped or quantised)."""

    static_columns_unit = 256  # a static cache's columns are a multiple of this: few sizes, few compilations

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        template: Any,
        stop_ids: Sequence[int],
        stop_strings: Sequence[str] = (),
        max_batch_size: int = 64,
        max_queue: int = 256,
        system: str | None = None,
        max_batch_tokens: int | str | None = "auto",
        decode: str = "auto",
        serve_length: int = 4096,
        longest_row: int | None = None,
    ) -> None:
        self.model, self.tokenizer, self.template = model, tokenizer, template
        self.stop_ids = sorted(set(stop_ids))
        self._stop_set = set(self.stop_ids)
        self.stop_strings = tuple(stop_strings)
        # The white space a template writes between the prompt and the answer (belle's "Assistant:" + " "): it is
        # trained as the answer's first token, but it is not answer text, and a chat history holding it would
        # be rendered with two spaces next turn. SentencePiece's decoding drops it already; byte-level BPE's not.
        lead = getattr(template, "assistant", "").split("{content}")[0]
        self.answer_lead = lead if lead and not lead.strip() else ""
        self.max_batch_size = max_batch_size
        self.system = system
        self.device = next(model.parameters()).device
        config = model.config
        self.context_length = getattr(config, "max_position_embeddings", None) or getattr(
            config, "n_positions", None
        )
        forward = inspect.signature(type(_base_model(model)).forward).parameters
        self._takes_positions = "position_ids" in forward
        self._takes_logits_to_keep = "logits_to_keep" in forward
        self._waiting: queue.Queue[_Sequence] = queue.Queue(maxsize=max_queue)
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closing = False
        self.peak_batch = 0  # most rows ever decoded together (the API's /health reports it)
        # The KV cache the batch may reserve, in tokens (prompt + max_tokens of every row); "auto": 70 % of
        # the GPU memory free now, None (and on CPU): no limit but max_batch_size.
        self.max_batch_tokens = kv_token_budget(model) if max_batch_tokens == "auto" else max_batch_tokens
        self._held: _Sequence | None = None  # taken from the queue, waiting for room in the batch
        # decode "static": a fixed batch over a static KV cache, one compiled CUDA-graph step on a GPU
        # (_StaticSlots); "dynamic": the batch and cache grow and shrink with the rows; "auto": static on a GPU
        # for models that support it.
        if decode not in ("auto", "static", "dynamic"):
            raise GenerationError(f"decode must be auto, static or dynamic, got {decode!r}")
        # "auto" leaves a model in training mode (GRPO samples with dropout on) to the growing batch: a CUDA graph
        # of a step that draws dropout masks was never measured.
        wanted = decode == "static" or (decode == "auto" and self.device.type == "cuda" and not model.training)
        self.static = wanted and _StaticSlots.supports(model)
        if decode == "static" and not self.static:
            raise GenerationError(f"{type(_base_model(model)).__name__} cannot decode with a static cache here "
                                  "(sliding-window layers, quantised or sharded weights): use decode='dynamic'")  # fmt: skip
        self.serve_length = serve_length  # most tokens (prompt + answer) of one request while serving
        # The most tokens (prompt + answer) any row of any generate() call will hold, where the caller knows it
        # (PPO: max_prompt_len + max_new_tokens): the static batch is sized for it at once. Without it the batch
        # grows with the longest request so far, and each growth compiles the step again (~35 s on an H200).
        self.longest_row = longest_row
        self.compile_decode = self.device.type == "cuda"  # compile the static step (CUDA graphs on a GPU)
        self._slots: _StaticSlots | None = None
        self._reset_batch()

    # ---- public interface -----------------------------------------------------------------------------

    def encode(
        self, messages: list[dict[str, str]], system: str | None = None, tools: Any = None
    ) -> list[int]:
        from common.templates import encode_generation_prompt

        system = system if system is not None else self.system
        extra = {"tools": tools} if tools else {}
        return encode_generation_prompt(self.template, self.tokenizer, messages, system, **extra)

    def generate(self, prompts, params, progress=False) -> list[Completion]:
        params_list = [params] * len(prompts) if isinstance(params, SamplingParams) else list(params)
        if len(params_list) != len(prompts):
            raise GenerationError(f"{len(prompts)} prompts but {len(params_list)} sampling settings")
        for p in params_list:
            p.check()
        if self._thread is not None:  # the server's loop owns the model: queue them there and wait
            handles = [self.submit(ids, p) for ids, p in zip(prompts, params_list, strict=True)]
            results = []
            for handle in handles:
                *_, (kind, value) = handle.events()
                if kind == "error":
                    raise GenerationError(value)
                results.append(value)
            return results
        if self.static:
            self._slots = None  # sized below for these requests (the context length bounds them meanwhile)
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
        pending = [self._new_sequence(list(prompts[i]), params_list[i], None, i) for i in order]
        if self.static and pending:
            longest = max(len(s.prompt_ids) + s.params.max_tokens for s in pending)
            self._use_static(max(longest, self.longest_row or 0))
        results: list[Completion | None] = [None] * len(prompts)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(prompts), desc="generating")
        pending.reverse()  # pop() from the end takes the longest first
        try:
            while pending or self._rows:
                free = self._capacity() - len(self._rows)
                if pending and self._may_admit(free):
                    newcomers: list[_Sequence] = []
                    while pending and len(newcomers) < free and self._fits(pending[-1], newcomers):
                        newcomers.append(pending.pop())
                    if newcomers:
                        self._admit(newcomers)
                for seq in self._step():
                    results[seq.index] = self._completion(seq)
                    if bar is not None:
                        bar.update(1)
        except BaseException:  # out of memory, Ctrl-C: the next call starts from an empty batch
            self._reset_batch()
            raise
        finally:
            if bar is not None:
                bar.close()
        return results  # type: ignore[return-value]

    def submit(self, prompt_ids, params, on_event=None) -> RequestHandle:
        params.check()
        handle = RequestHandle(on_event)
        try:
            self._waiting.put_nowait(self._new_sequence(list(prompt_ids), params, handle, 0, stream=True))
        except queue.Full:
            raise EngineOverloaded(f"{self._waiting.maxsize} requests are already waiting") from None
        self._wake.set()
        return handle

    @property
    def waiting(self) -> int:
        return self._waiting.qsize() + (self._held is not None)

    @property
    def running(self) -> int:
        return len(self._rows)

    def start(self) -> None:
        if self._thread is None:
            # What one request may hold while serving (the API checks requests against it).
            self.context_length = min(self.context_length or self.serve_length, self.serve_length)
            if self.static:
                self._use_static(self.context_length)
                self.context_length = self._token_limit()
            self._closing = False
            self._thread = threading.Thread(target=self._serve, name="generation", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    # ---- serving loop -------------------------------------------------------------------------------

    def _serve(self) -> None:
        while not self._closing:
            newcomers: list[_Sequence] = []
            try:
                free = self._capacity() - len(self._rows)
                while len(newcomers) < free and self._may_admit(free):
                    if self._held is None:
                        try:
                            self._held = self._waiting.get_nowait()
                        except queue.Empty:
                            break
                    if self._held.handle is not None and self._held.handle.cancelled:
                        self._held = None
                        continue
                    if not self._fits(self._held, newcomers):
                        break
                    newcomers.append(self._held)
                    self._held = None
                if newcomers:
                    try:
                        prefilled = self._prefill(newcomers)
                    except Exception as err:  # only the newcomers fail: the running batch is untouched
                        logger.exception("prefill failed")
                        for seq in newcomers:
                            seq.handle.emit(("error", f"generation failed: {type(err).__name__}: {err}"))
                    else:
                        self._attach(newcomers, *prefilled)
                    newcomers = []
                if not self._rows:
                    self._wake.wait(timeout=0.5)
                    self._wake.clear()
                    continue
                for seq in self._step():
                    seq.handle.emit(("done", self._completion(seq)))
            except Exception as err:  # one failed batch must not take the server down: fail its requests
                logger.exception("generation failed")
                for seq in {id(s): s for s in self._rows + newcomers}.values():
                    if seq.handle is not None:
                        seq.handle.emit(("error", f"generation failed: {type(err).__name__}: {err}"))
                self._reset_batch()

    # ---- the batch ------------------------------------------------------------------------------------

    def _use_static(self, tokens: int) -> None:
        """Decode with the model's static batch, sized for rows of up to `tokens` tokens (prompt + answer;
        rounded up to 256 columns so that few sizes are ever compiled, capped at the context length) and as many
        rows as max_batch_size and the KV-cache memory allow."""
        length = -(-tokens // self.static_columns_unit) * self.static_columns_unit
        if self.context_length is not None:
            length = min(length, self.context_length)
        slots = self.max_batch_size
        if self.max_batch_tokens is not None:
            slots = max(1, min(slots, self.max_batch_tokens // length))
        self._slots = _static_slots_for(self.model, slots, length, compile_step=self.compile_decode)

    def _capacity(self) -> int:
        return min(self.max_batch_size, self._slots.slots) if self._slots is not None else self.max_batch_size

    def _token_limit(self) -> int | None:
        """Most tokens (prompt + answer) a row may hold: the context length, or the static cache's columns."""
        if self._slots is None:
            return self.context_length
        return min(self.context_length or self._slots.length, self._slots.length)

    def _reset_batch(self) -> None:
        if self._slots is not None:
            self._slots.reset()
        self._rows: list[_Sequence] = []
        self._steps_since_admit = 0
        self._cache: Any = None
        self._mask: Any = None  # [rows, cache width] 1 where the cache holds a real token
        self._positions: Any = None  # [rows] position id of each row's next token
        self._next: Any = None  # [rows] the token each row feeds next

    def _new_sequence(self, prompt_ids, params, handle, index, stream=False) -> _Sequence:
        if not prompt_ids:
            raise GenerationError("the prompt is empty")
        limit = self._token_limit()
        if limit is not None and len(prompt_ids) >= limit:
            raise GenerationError(f"the prompt has {len(prompt_ids)} tokens; this model's context holds "
                                  f"{limit} (prompt and answer together)")  # fmt: skip
        stop = params.stop + self.stop_strings
        if stop != params.stop:
            params = dataclasses.replace(params, stop=stop)
        return _Sequence(prompt_ids, params, handle, index, stream=stream or bool(params.stop))

    def _may_admit(self, free: int) -> bool:
        """Whether waiting requests join now. Each join costs a prefill pass and a copy of the cache, so a
        running batch takes newcomers once an eighth of its places are free, or after 16 steps of waiting
        (a bound on a request's wait for its first token). Only caches whose every layer can be padded and
        joined take newcomers at all; others (sliding-window layers) run batch after batch."""
        if not self._rows:
            return True
        if free < 1 or not self._joinable:
            return False
        return free >= max(1, self.max_batch_size // 8) or self._steps_since_admit >= 16

    def _fits(self, seq: _Sequence, newcomers: list[_Sequence]) -> bool:
        """Whether `seq` joining keeps the batch's reserved KV cache (prompt + max_tokens per row) within
        max_batch_tokens; a request alone always runs."""
        if self._slots is not None or self.max_batch_tokens is None or not (self._rows or newcomers):
            return True  # a static batch's rows and columns were sized to the memory already
        reserved = sum(len(s.prompt_ids) + s.params.max_tokens for s in (*self._rows, *newcomers))
        return reserved + len(seq.prompt_ids) + seq.params.max_tokens <= self.max_batch_tokens

    def _forward(self, ids: Any, mask: Any, positions: Any, cache: Any) -> Any:
        kwargs: dict[str, Any] = {"input_ids": ids, "attention_mask": mask, "past_key_values": cache,
                                  "use_cache": True}  # fmt: skip
        if self._takes_positions:
            kwargs["position_ids"] = positions
        if self._takes_logits_to_keep:
            kwargs["logits_to_keep"] = 1
        out = self.model(**kwargs)
        if out.past_key_values is None:
            raise GenerationError("the model returned no KV cache (gradient checkpointing in training mode?); "
                                  "call model.eval() before generating")  # fmt: skip
        return out.logits[:, -1, :].float(), out.past_key_values

    def _admit(self, newcomers: list[_Sequence]) -> None:
        """Prefill the newcomers' prompts and join them to the batch."""
        self._attach(newcomers, *self._prefill(newcomers))

    def _prefill(self, newcomers: list[_Sequence]) -> tuple[Any, Any, Any]:
        """(cache, mask, first tokens) of the newcomers' prompts, left-padded together; the batch is untouched."""
        import torch

        width = max(len(s.prompt_ids) for s in newcomers)
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(s.prompt_ids)) + s.prompt_ids for s in newcomers],
                           device=self.device)  # fmt: skip
        mask = torch.tensor([[0] * (width - len(s.prompt_ids)) + [1] * len(s.prompt_ids) for s in newcomers],
                            device=self.device)  # fmt: skip
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            logits, cache = self._forward(ids, mask, positions, None)
        for seq in newcomers:
            if seq.params.seed is not None and not seq.params.greedy:
                seq.generator = torch.Generator(device=self.device).manual_seed(seq.params.seed)
        return cache, mask, self._pick(logits, newcomers)

    def _attach(self, newcomers: list[_Sequence], cache: Any, mask: Any, next_tokens: Any) -> None:
        """Join prefilled newcomers to the batch (or start one) and record their first tokens."""
        import torch

        if self._slots is not None:
            self._slots.join(newcomers, cache, mask, next_tokens)
            self._rows, self._joinable = [row for row in self._slots.rows if row is not None], True
            self.peak_batch = max(self.peak_batch, len(self._rows))
            self._steps_since_admit = 0
            self._record(next_tokens, newcomers)
            return
        new_positions = mask.sum(-1)
        if not self._rows:
            self._cache, self._mask, self._positions = cache, mask, new_positions
            self._joinable = all(type(layer).__name__ == "DynamicLayer" for layer in cache.layers)
            self._rows, self._next = list(newcomers), next_tokens
        else:
            self._join(cache, mask)
            self._positions = torch.cat([self._positions, new_positions])
            self._next = torch.cat([self._next, next_tokens])
            self._rows += newcomers
        self.peak_batch = max(self.peak_batch, len(self._rows))
        self._steps_since_admit = 0
        self._record(next_tokens, newcomers)

    def _join(self, cache: Any, mask: Any) -> None:
        """Append the newcomers' cache rows to the batch's, left-padding the narrower one with empty slots."""
        import torch

        old_width, new_width = self._mask.shape[1], mask.shape[1]
        width = max(old_width, new_width)

        def left_pad(t: Any, w: int) -> Any:
            if w == width:
                return t
            shape = list(t.shape)
            shape[-2 if t.dim() == 4 else -1] = width - w
            return torch.cat([t.new_zeros(shape), t], dim=-2 if t.dim() == 4 else -1)

        for layer, new_layer in zip(self._cache.layers, cache.layers, strict=True):
            layer.keys = torch.cat([left_pad(layer.keys, old_width), left_pad(new_layer.keys, new_width)])
            layer.values = torch.cat(
                [left_pad(layer.values, old_width), left_pad(new_layer.values, new_width)]
            )
        self._mask = torch.cat([left_pad(self._mask, old_width), left_pad(mask, new_width)])

    def _step(self) -> list[_Sequence]:
        """One decode step for every row; returns the sequences that finished (and leaves them out)."""
        import torch

        finished = self._drop_done()
        if not self._rows:
            return finished
        self._steps_since_admit += 1
        if self._slots is not None:
            logits, live = self._slots.step()
            rows = [self._slots.rows[i] for i in live]
            tokens = self._pick(logits, rows)
            self._slots.next[torch.tensor(live, device=tokens.device)] = tokens
            self._record(tokens, rows)
            return finished + self._drop_done()
        ones = self._mask.new_ones(len(self._rows), 1)
        self._mask = torch.cat([self._mask, ones], dim=1)
        with torch.inference_mode():
            logits, self._cache = self._forward(self._next[:, None], self._mask, self._positions[:, None],
                                                self._cache)  # fmt: skip
        self._positions = self._positions + 1
        self._next = self._pick(logits, self._rows)
        self._record(self._next, self._rows)
        return finished + self._drop_done()

    def _record(self, tokens: Any, rows: list[_Sequence]) -> None:
        """Append each row's new token and decide whether the row is finished."""
        now, limit = time.perf_counter(), self._token_limit()
        for seq, token in zip(rows, tokens.tolist(), strict=True):
            if seq.finished:
                continue
            if not seq.tokens:
                seq.first_token_at = now
            seq.tokens.append(token)
            if token in self._stop_set:
                seq.finished = "stop"
            elif len(seq.tokens) >= seq.params.max_tokens:
                seq.finished = "length"
            elif limit is not None and len(seq.prompt_ids) + len(seq.tokens) >= limit:
                seq.finished = "length"
            if seq.stream:
                self._advance_text(seq)
            if seq.handle is not None and seq.handle.cancelled:
                seq.finished = seq.finished or "cancelled"

    def _drop_done(self) -> list[_Sequence]:
        """Take finished rows out of the batch (and the cache columns no remaining row uses)."""
        import torch

        done = [s for s in self._rows if s.finished]
        if not done:
            return []
        if self._slots is not None:
            self._slots.rows = [None if row is not None and row.finished else row for row in self._slots.rows]
            self._rows = [row for row in self._slots.rows if row is not None]
            return done
        keep = [i for i, s in enumerate(self._rows) if not s.finished]
        self._rows = [self._rows[i] for i in keep]
        if not keep:
            self._reset_batch()
            return done
        index = torch.tensor(keep, device=self.device)
        self._cache.batch_select_indices(index)
        self._mask, self._positions, self._next = self._mask[index], self._positions[index], self._next[index]
        if self._joinable:
            unused = int((self._mask.sum(0) == 0).long().cumprod(0).sum())  # leading all-padding columns
            if unused:
                for layer in self._cache.layers:
                    layer.keys, layer.values = layer.keys[:, :, unused:], layer.values[:, :, unused:]
                self._mask = self._mask[:, unused:]
        return done

    # ---- sampling -------------------------------------------------------------------------------------

    def _pick(self, logits: Any, rows: list[_Sequence]) -> Any:
        """The next token of each row: argmax for greedy rows, else a draw after temperature, top-k, top-p."""
        import torch

        for i, seq in enumerate(rows):
            penalty = seq.params.repetition_penalty
            if penalty != 1.0:
                seen = torch.tensor(seq.prompt_ids + seq.tokens, device=logits.device)
                scores = logits[i, seen]
                logits[i, seen] = torch.where(scores < 0, scores * penalty, scores / penalty)
        tokens = logits.argmax(-1)
        sampled = [i for i, s in enumerate(rows) if not s.params.greedy]
        if not sampled:
            return tokens
        index = torch.tensor(sampled, device=logits.device)
        scores = logits[index] / torch.tensor([rows[i].params.temperature for i in sampled],
                                              device=logits.device)[:, None]  # fmt: skip
        top_k = [rows[i].params.top_k for i in sampled]
        if any(top_k):
            vocab = scores.shape[-1]
            kth = torch.tensor([min(k, vocab) if k else vocab for k in top_k], device=logits.device)
            cut = scores.sort(-1, descending=True).values.gather(-1, (kth - 1)[:, None])
            scores = scores.masked_fill(scores < cut, float("-inf"))
        top_p = torch.tensor([rows[i].params.top_p for i in sampled], device=logits.device)
        if bool((top_p < 1).any()):
            ordered, order = scores.sort(-1, descending=True)
            before = ordered.softmax(-1).cumsum(-1) - ordered.softmax(-1)  # mass of the better tokens
            drop = before >= top_p[:, None]
            scores = scores.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
        probs = scores.softmax(-1)
        unseeded = [j for j, i in enumerate(sampled) if rows[i].generator is None]
        if unseeded:
            # torch's global generator: PPO's saved RNG state covers its rollouts
            draws = torch.multinomial(probs[unseeded], 1).squeeze(-1)
            tokens[index[unseeded]] = draws
        for j, i in enumerate(sampled):
            if rows[i].generator is not None:
                tokens[i] = torch.multinomial(probs[j], 1, generator=rows[i].generator)[0]
        return tokens

    # ---- text -----------------------------------------------------------------------------------------

    def _answer_ids(self, seq: _Sequence) -> list[int]:
        return seq.tokens[:-1] if seq.tokens and seq.tokens[-1] in self._stop_set else seq.tokens

    def _advance_text(self, seq: _Sequence) -> None:
        """Decode the new token(s) into text, apply stop strings and emit what can no longer change."""
        ids = self._answer_ids(seq)
        decode = self.tokenizer.decode
        before = decode(ids[seq._prefix : seq._read], skip_special_tokens=True)
        after = decode(ids[seq._prefix :], skip_special_tokens=True)
        if len(after) > len(before) and not after.endswith("\ufffd"):
            checked_from = max(0, len(seq.text) - max((len(s) for s in seq.params.stop), default=0))
            seq.text += after[len(before) :]
            if not seq.lead_checked:
                seq.lead_checked = True
                seq.text = seq.text.removeprefix(self.answer_lead)
            seq._prefix, seq._read = seq._read, len(ids)
            for stop in seq.params.stop:
                at = seq.text.find(stop, checked_from)
                if at != -1 and (seq.stop_at is None or at < seq.stop_at):
                    seq.stop_at = at
            if seq.stop_at is not None:
                seq.finished = "stop"
        if seq.handle is None:
            return
        if seq.finished:
            end = seq.stop_at if seq.stop_at is not None else len(seq.text)
        else:  # hold back an ending that may grow into a stop string
            end = len(seq.text) - _longest_stop_prefix(seq.text, seq.params.stop)
        if end > seq.sent:
            seq.handle.emit(("delta", seq.text[seq.sent : end]))
            seq.sent = end

    def _completion(self, seq: _Sequence) -> Completion:
        finish = seq.finished if seq.finished != "cancelled" else "stop"
        ids = self._answer_ids(seq)
        if seq.stop_at is not None:
            text = seq.text[: seq.stop_at]
        else:
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            text = text.removeprefix(self.answer_lead)
            if seq.handle is not None and text.startswith(seq.text[: seq.sent]) and len(text) > seq.sent:
                seq.handle.emit(("delta", text[seq.sent :]))  # what the incremental decoding held back
                seq.sent = len(text)
        return Completion(seq.prompt_ids, list(seq.tokens), text, finish or "length", seq.first_token_at)


def _longest_stop_prefix(text: str, stops: Sequence[str]) -> int:
    """Length of the longest ending of `text` that is the beginning of a stop string."""
    best = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:n]):
                best = n
                break
    return best


def _base_model(model: Any) -> Any:
    """The transformers model under a PEFT wrapper (whose forward takes **kwargs)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def kv_token_budget(model: Any, fraction: float = 0.7) -> int | None:
    """How many tokens of KV cache fit in `fraction` of the GPU memory free now (None on CPU, or when the
    config does not say the cache's shape)."""
    import torch

    device = next(model.parameters()).device
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    layers = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", None)
    heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_head", None)
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or (config.hidden_size // heads if heads else None)
    if device.type != "cuda" or not (layers and kv_heads and head_dim):
        return None
    per_token = 2 * layers * kv_heads * head_dim * torch.finfo(model.dtype).bits // 8
    free, _ = torch.cuda.mem_get_info(device)
    return int(free * fraction) // per_token


# ---- loading --------------------------------------------------------------------------------------------


def default_template(
    model_name_or_path: str, model_type: str | None = None, trust_remote_code: bool = False
) -> str:
    """The chat template of the model's family (common/families.py; `model_type` when given, else the
    weights' config.json); `default` for unknown families."""
    from common.families import family_of
    from common.modeling import load_model_config

    if model_type is None:
        try:
            model_type = load_model_config(model_name_or_path, trust_remote_code).model_type
        except ConfigError:
            raise
        except (OSError, ValueError) as err:
            raise ConfigError(f"cannot read the model config of {model_name_or_path!r} (no such folder, and the "
                              f"hub could not provide it): {str(err).splitlines()[0]}") from None  # fmt: skip
    family = family_of(model_type)
    return family.template if family else "default"


@dataclasses.dataclass
class ServingSettings(PrecisionSettings):
    """What api.py, chat.py and web_demo.py serve, beside ModelSettings (weights, quantisation)."""

    adapter_name_or_path: str | None = config_field(
        None, "LoRA adapter folder served on top of the base model"
    )
    template: str | None = config_field(
        None,
        "prompt format the model was trained with; null: the family's default (python -m common.families)",
    )
    system: str | None = config_field(
        None, "system prompt when a conversation has none (null: the template's)"
    )
    max_batch_size: int = config_field(64, "most sequences decoded together (continuous batching)")
    max_queue: int = config_field(256, "most requests waiting for a place in the batch; more are refused")
    max_tokens: int = config_field(512, "answer length when a request does not say (max_tokens)")
    max_model_len: int = config_field(
        4096,
        "most tokens (prompt + answer) of one request (the model's context if that is smaller); on a GPU the "
        "engine keeps a static KV cache of max_batch_size rows this long (fewer rows if the memory is short)",
    )

    def check(self) -> None:
        from common.templates import TEMPLATE_NAMES

        if self.template is not None and self.template not in TEMPLATE_NAMES:
            raise ConfigError(
                f"unknown template {self.template!r}; choose one of {', '.join(TEMPLATE_NAMES)}"
            )
        for name in ("max_batch_size", "max_queue", "max_tokens", "max_model_len"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")


@dataclasses.dataclass
class ListenSettings(Settings):
    """Where a server (api.py, web_demo.py) listens: this machine only unless told otherwise."""

    host: str = config_field(
        "127.0.0.1", "address to listen on (0.0.0.0: every interface; for api.py set API_KEY then)"
    )
    port: int = config_field(8000, "port to listen on")


def engine_from_settings(config: Any) -> HFEngine:
    """The engine a serving script's config (ModelSettings + ServingSettings) describes."""
    return load_engine(config, config.adapter_name_or_path, config.template, config.system,
                       precision=config.precision, max_batch_size=config.max_batch_size,
                       max_queue=config.max_queue, serve_length=config.max_model_len)  # fmt: skip


def load_engine(
    model: Any,
    adapter_name_or_path: str | None = None,
    template: str | None = None,
    system: str | None = None,
    quantization_bit: int | None = None,
    precision: str = "auto",
    max_batch_size: int = 64,
    max_queue: int = 256,
    merge_adapter: bool = True,
    decode: str = "auto",
    serve_length: int = 4096,
) -> HFEngine:
    """An engine on a model (a folder or hub name, or ModelSettings), with an optional LoRA adapter on top.

    The tokenizer is the adapter's when it saved one (an extended vocabulary), and the base's embeddings are
    resized to it before the adapter loads. Without quantisation the adapter is merged into the weights
    (faster decoding; `merge_adapter=False` keeps it separate); a quantised base keeps it as LoRA layers.
    `template` None: the family's default (common/families.py)."""
    import torch

    from common.modeling import adapter_tokenizer_path, load_tokenizer, load_training_model, pick_precision
    from common.settings import ModelSettings
    from common.templates import get_template, stop_token_ids

    if isinstance(model, str):
        model = ModelSettings(model_name_or_path=model, quantization_bit=quantization_bit)
    path, quantised = model.model_name_or_path, model.quantization_bit is not None
    precision = pick_precision(precision)
    template_name = template or default_template(path, model.model_type, model.trust_remote_code)
    tokenizer_path = adapter_tokenizer_path(adapter_name_or_path, path) if adapter_name_or_path else path
    tokenizer = load_tokenizer(tokenizer_path, padding_side="left", trust_remote_code=model.trust_remote_code)
    lm = load_training_model(model, precision, use_lora=True)
    if adapter_name_or_path:
        lm = _with_adapter(lm, adapter_name_or_path, len(tokenizer), merge_adapter and not quantised)
    if not quantised:
        lm.to("cuda" if torch.cuda.is_available() else "cpu")
    lm.eval()
    template_obj = get_template(template_name)
    model_eos = lm.generation_config.eos_token_id if lm.generation_config is not None else None
    model_eos = [] if model_eos is None else [model_eos] if isinstance(model_eos, int) else list(model_eos)
    stop_ids = {*stop_token_ids(template_obj, tokenizer), *model_eos}
    stop_strings = [w for w in getattr(template_obj, "stop_words", ()) if w]
    engine = HFEngine(lm, tokenizer, template_obj, sorted(stop_ids), stop_strings, max_batch_size=max_batch_size,
                      max_queue=max_queue, system=system, decode=decode, serve_length=serve_length)  # fmt: skip
    engine.template_name = template_name
    budget = f", KV cache for {engine.max_batch_tokens} tokens" if engine.max_batch_tokens else ""
    logger.info("engine: %s%s, template %s, %s, stop ids %s, up to %d sequences at once%s", path,
                f" + adapter {adapter_name_or_path}" if adapter_name_or_path else "", template_name, precision,
                sorted(stop_ids), max_batch_size, budget)  # fmt: skip
    return engine


def _with_adapter(model: Any, adapter_path: str, vocab_size: int, merge: bool) -> Any:
    """The base with a LoRA adapter on top; embeddings grown first to the adapter's (extended) vocabulary."""
    from pathlib import Path

    from peft import PeftModel

    if not (Path(adapter_path) / "adapter_config.json").is_file():
        raise OSError(f"{adapter_path} is not a LoRA adapter folder (no adapter_config.json in it)")
    if model.get_input_embeddings().weight.shape[0] < vocab_size:
        logger.info("growing the base's embeddings to the adapter's vocabulary of %d tokens", vocab_size)
        model.resize_token_embeddings(vocab_size)
    model = PeftModel.from_pretrained(model, adapter_path)
    return model.merge_and_unload() if merge else model
