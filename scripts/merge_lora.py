"""Merge a LoRA adapter into its base model and save one ordinary model folder.

    python scripts/merge_lora.py --base_model models/tiny-llama --lora_model trained_models/x \\
        --output_dir trained_models/x-merged

The merged folder loads with `AutoModelForCausalLM.from_pretrained` alone (no peft needed) and holds
safetensors weights, the tokenizer (the adapter's when it saved one, else the base model's) and
`merge_info.json` (base, adapter, dtype). The merge runs in fp32 unless `--dtype` says otherwise.

A base that ships its own modeling code (Baichuan, ChatGLM, InternLM, Qwen v1, XVERSE: `--trust_remote_code`)
has that code copied beside the merged weights, every *.py of its folder, with config.json's `auto_map`
pointing at the copies: the merged folder loads like the original, with trust_remote_code, and without the hub.

QLoRA adapters (trained with `quantization_bit` 4 or 8) are merged into the base in full precision, never into
4/8-bit weights: the result is the dequantised base plus the adapter, which differs slightly from the
quantised model the adapter was trained with. The script says so and records it in merge_info.json.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a file: find `common`

from common.config import ConfigError, config_field, parse_config  # noqa: E402
from common.runs import run_as_script, setup_logging, tool_output_dir  # noqa: E402
from common.settings import RemoteCodeSettings  # noqa: E402

logger = logging.getLogger("merge_lora")


@dataclasses.dataclass
class MergeConfig(RemoteCodeSettings):
    base_model: str = config_field("models/tiny-llama", "the base model the adapter was trained on")
    lora_model: str = config_field("trained_models/tiny-llama", "LoRA adapter folder (adapter_config.json)")
    output_dir: str = config_field("trained_models/tiny-llama-merged", "where the merged model goes")
    dtype: str = config_field(
        "fp32", "fp32, bf16 or fp16: precision to merge and save in (fp32 adds the update without rounding)"
    )
    overwrite: bool = config_field(False, "allow writing into an output_dir that already holds files")

    def check(self) -> None:
        if self.dtype not in ("fp32", "bf16", "fp16"):
            raise ConfigError(f"dtype must be fp32, bf16 or fp16, got {self.dtype!r}")


def adapter_vocab_size(adapter_path: str) -> int | None:
    """Rows of the embedding/output head saved with the adapter (modules_to_save), or None.

    pretrain.py with a larger tokenizer saves embed_tokens/lm_head of the new size; the base must be
    resized to that size before PEFT can load them on top of it.
    """
    weights = Path(adapter_path) / "adapter_model.safetensors"
    if not weights.is_file():
        return None
    from safetensors import safe_open

    rows = None
    with safe_open(str(weights), "pt") as handle:
        for key in handle.keys():
            if key.endswith(("embed_tokens.weight", "lm_head.weight", "word_embeddings.weight")):
                rows = max(rows or 0, handle.get_slice(key).get_shape()[0])
    return rows


def adapter_quantization(adapter_path: str) -> dict | None:
    """The quantisation an adapter was trained under, from the run config saved beside it (finetune.py,
    pretrain.py, train_dpo.py write theirs into the adapter's folder or, for pt_lora_model, its parent)."""
    folder = Path(adapter_path)
    for config_file in [*folder.glob("*_config.json"), *folder.parent.glob("*_config.json")]:
        if config_file.name in ("adapter_config.json", "tokenizer_config.json"):
            continue
        try:
            run_config = json.loads(config_file.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(run_config, dict) and run_config.get("quantization_bit"):
            return {"quantization_bit": run_config["quantization_bit"],
                    "quantization_type": run_config.get("quantization_type"), "run_config": str(config_file)}  # fmt: skip
    return None


def copy_model_code(base_model: str, output_dir: Path) -> list[str]:
    """Every *.py of the base's folder (what its auto_map names, and helpers it imports only at run time, such
    as a quantizer) beside the merged weights, and the saved auto_maps pointed at these copies instead of a
    hub repository (`repo--module.Class`, written when the base came from the hub). Returns the files' names."""
    source = Path(base_model)
    if not source.is_dir():
        from huggingface_hub import snapshot_download

        source = Path(snapshot_download(base_model, allow_patterns=["*.py"]))  # from the cache it just loaded
    copied = []
    for code in sorted(source.glob("*.py")):
        shutil.copyfile(code, output_dir / code.name)
        copied.append(code.name)

    def local(reference: str | None) -> str | None:
        # "repo--module.Class" -> "module.Class" when module.py now sits in the merged folder
        if reference is None or "--" not in reference:
            return reference
        bare = reference.split("--")[-1]
        return bare if (output_dir / f"{bare.rsplit('.', 1)[0]}.py").is_file() else reference

    for name in ("config.json", "tokenizer_config.json"):
        saved = output_dir / name
        if not saved.is_file():
            continue
        settings = json.loads(saved.read_text())
        if not settings.get("auto_map"):
            continue
        settings["auto_map"] = {
            key: [local(r) for r in value] if isinstance(value, list) else local(value)
            for key, value in settings["auto_map"].items()
        }
        saved.write_text(json.dumps(settings, indent=2, ensure_ascii=False) + "\n")
    return copied


def main(argv: list[str] | None = None) -> Path:
    setup_logging()
    # ---- Config -------------------------------------------------------------------------------
    config = parse_config(MergeConfig, argv, description=__doc__)
    inputs = (config.base_model, config.lora_model)
    output_dir = tool_output_dir(config.output_dir, config.overwrite, inputs)

    # ---- Load base + adapter ------------------------------------------------------------------
    from common.modeling import (
        adapter_tokenizer_path,
        load_causal_lm_with_adapter,
        load_tokenizer,
        torch_dtype,
    )

    adapter_config = Path(config.lora_model) / "adapter_config.json"
    trained_on = (
        json.loads(adapter_config.read_text()).get("base_model_name_or_path")
        if adapter_config.is_file()
        else None
    )
    if trained_on and Path(trained_on).name != Path(config.base_model).name:
        logger.warning(
            "the adapter was trained on %s but is being merged into %s", trained_on, config.base_model
        )
    quantised = adapter_quantization(config.lora_model)
    if quantised:
        logger.warning(
            "the adapter was trained on a %s-bit quantised base (QLoRA, %s); it is merged into the base's "
            "full-precision weights in %s, so the merged model is the dequantised base + adapter and differs "
            "slightly from the quantised model it trained with",
            quantised["quantization_bit"], quantised["run_config"], config.dtype,
        )  # fmt: skip
    vocab = adapter_vocab_size(config.lora_model)
    if vocab is None:
        model = load_causal_lm_with_adapter(config.base_model, config.lora_model, torch_dtype(config.dtype),
                                            config.trust_remote_code)  # fmt: skip
    else:
        if not (Path(config.lora_model) / "adapter_config.json").is_file():
            raise OSError(f"{config.lora_model} is not a LoRA adapter folder (no adapter_config.json in it)")
        from peft import PeftModel

        from common.modeling import load_causal_lm

        base = load_causal_lm(
            config.base_model, torch_dtype(config.dtype), trust_remote_code=config.trust_remote_code
        )
        if vocab != base.get_input_embeddings().weight.shape[0]:
            logger.info("resizing the base vocabulary from %d to %d rows to match the adapter",
                        base.get_input_embeddings().weight.shape[0], vocab)  # fmt: skip
            base.resize_token_embeddings(vocab, mean_resizing=False)  # the adapter's saved rows replace them
        model = PeftModel.from_pretrained(base, config.lora_model)
    tokenizer_path = adapter_tokenizer_path(config.lora_model, config.base_model)
    tokenizer = load_tokenizer(tokenizer_path, trust_remote_code=config.trust_remote_code)

    # ---- Merge and save -----------------------------------------------------------------------
    merged = model.merge_and_unload()
    merged.to(torch_dtype(config.dtype))  # adapter weights kept in fp32 by peft must not leak into the save
    output_dir.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(str(output_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(output_dir))
    model_code = copy_model_code(config.base_model, output_dir) if config.trust_remote_code else []
    if model_code:
        logger.info("the base's own code copied beside the merged weights: %s", ", ".join(model_code))
    info = {
        "base_model": config.base_model,
        "lora_model": config.lora_model,
        "dtype": config.dtype,
        "tokenizer_from": tokenizer_path,
        "trained_on_quantised_base": quantised,
        "model_code": model_code,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    (output_dir / "merge_info.json").write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n")
    logger.info("merged %s into %s (%s); saved in %s", config.lora_model, config.base_model, config.dtype,
                output_dir)  # fmt: skip
    return output_dir


if __name__ == "__main__":
    run_as_script(main, ValueError)
