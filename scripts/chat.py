"""Chat with a fine-tuned model in the terminal; answers stream in as they are generated.

    python scripts/chat.py --model_name_or_path trained_models/bloom --template belle
    python scripts/chat.py --model_name_or_path models/tiny-llama --adapter_name_or_path trained_models/lora-llama \\
        --system "You are a helpful assistant." --temperature 0.7

Type a message and press Enter. The whole conversation so far is the prompt of each answer, rendered by the
template training used (`--template`, default: the model family's). Commands: `clear` forgets the
conversation, `exit` (or Ctrl-D) quits. Model, adapter and template options are those of scripts/api.py.
Settings and defaults: `--help`.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a file: find `common`

from common.config import ConfigError, config_field, parse_config  # noqa: E402
from common.generation import ServingSettings  # noqa: E402
from common.runs import run_as_script, setup_logging  # noqa: E402
from common.settings import ModelSettings  # noqa: E402


@dataclasses.dataclass
class ChatConfig(ServingSettings, ModelSettings):
    temperature: float = config_field(0.7, "sampling temperature (0: greedy, the same answer every time)")
    top_p: float = config_field(0.9, "nucleus sampling probability mass")
    seed: int | None = config_field(None, "seed for the first answer's sampling (null: random)")

    def check(self) -> None:
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ConfigError(
                f"need temperature >= 0 and 0 < top_p <= 1, got {self.temperature}, {self.top_p}"
            )


def read_message() -> str | None:
    """The user's next line, or None at end of input (Ctrl-D)."""
    try:
        return input("User: ")
    except EOFError:
        return None


def main(argv: list[str] | None = None) -> None:
    setup_logging()
    # ---- Config and model ---------------------------------------------------------------------
    config = parse_config(ChatConfig, argv, description=__doc__)
    import readline  # noqa: F401 - line editing and history for input()

    from common.generation import GenerationError, SamplingParams, engine_from_settings

    engine = engine_from_settings(config)
    engine.start()
    seed = config.seed
    print("Type a message; `clear` starts a new conversation, `exit` quits.", flush=True)

    # ---- Chat ---------------------------------------------------------------------------------
    history: list[dict[str, str]] = []
    try:
        while (message := read_message()) is not None:
            if message.strip() == "exit":
                break
            if message.strip() == "clear":
                history = []
                print("(conversation cleared)", flush=True)
                continue
            if not message.strip():
                continue
            history.append({"role": "user", "content": message})
            params = SamplingParams(max_tokens=config.max_tokens, temperature=config.temperature,
                                    top_p=config.top_p, seed=seed)  # fmt: skip
            seed = None if seed is None else seed + 1
            answer = []
            try:
                prompt_ids = engine.encode(history, config.system)
                print("Assistant: ", end="", flush=True)
                for piece in engine.stream(prompt_ids, params):
                    print(piece, end="", flush=True)
                    answer.append(piece)
            except GenerationError as err:  # the conversation outgrew the context
                history.pop()
                print(f"\n(error: {err}; type `clear` to start again)", flush=True)
                continue
            except KeyboardInterrupt:  # Ctrl-C stops this answer, keeps what was said
                print(" (stopped)", end="")
            print(flush=True)
            history.append({"role": "assistant", "content": "".join(answer)})
    finally:
        engine.close()


if __name__ == "__main__":
    run_as_script(main)
