"""Loading models and tokenizers, choosing precision, and choosing what trains (full, freeze, LoRA)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from common.config import ConfigError
from common.settings import ModelSettings

logger = logging.getLogger(__name__)


def pick_precision(requested: str = "auto") -> str:
    """bf16 where the GPU supports it, fp16 on older GPUs, fp32 on CPU; an explicit choice wins."""
    import torch

    if requested != "auto":
        if requested in ("bf16", "fp16") and not torch.cuda.is_available():
            logger.warning("%s asked for but no GPU is visible; running in fp32 on CPU", requested)
            return "fp32"
        return requested
    if not torch.cuda.is_available():
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def torch_dtype(precision: str) -> Any:
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]


@contextlib.contextmanager
def refusing_remote_code(path: str) -> Iterator[None]:
    """transformers' refusal to run a folder's own code (a ValueError with a hub link and a Python argument
    name) as one line that says what allowing it means and which of our keys allows it."""
    try:
        yield
    except ValueError as err:
        if "trust_remote_code" not in str(err) or isinstance(err, ConfigError):
            raise
        raise ConfigError(
            f"{path} ships its own model or tokenizer code (auto_map in its config); allowing it runs that "
            "folder's Python code on this machine: read it, then set trust_remote_code true (--trust_remote_code)"
        ) from None


def load_model_config(path: str, trust_remote_code: bool = False) -> Any:
    """The model's config.json as transformers reads it (a custom-code family's own config class when allowed)."""
    from transformers import AutoConfig

    with refusing_remote_code(path):
        return AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)


# Qwen (v1)'s tokenizer names no eos and no pad token; its documents end with this one.
END_OF_TEXT = "<|endoftext|>"


def load_tokenizer(path: str, padding_side: str = "right", trust_remote_code: bool = False) -> Any:
    """The tokenizer saved with the model, made usable for batches: a missing pad token falls back to eos
    (LLaMA, Qwen v1), a missing eos to <|endoftext|> where the vocabulary has it (Qwen v1), and a custom
    tokenizer's left-only padding (ChatGLM's) to the library's, which pads on either side."""
    from transformers import AutoTokenizer
    from transformers.tokenization_utils_base import PreTrainedTokenizerBase

    with refusing_remote_code(path):
        tokenizer = AutoTokenizer.from_pretrained(
            path, padding_side=padding_side, trust_remote_code=trust_remote_code
        )
    if tokenizer.eos_token_id is None and tokenizer.convert_tokens_to_ids(END_OF_TEXT) not in (
        None, tokenizer.unk_token_id
    ):  # fmt: skip
        logger.info("the tokenizer in %s has no eos token; %s ends every response", path, END_OF_TEXT)
        tokenizer.eos_token = END_OF_TEXT
    if tokenizer.eos_token_id is None:
        raise ValueError(f"the tokenizer in {path} has no eos token; every response must end with one")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    custom = type(tokenizer).__module__.startswith("transformers_modules.")  # a folder's own code
    if custom and type(tokenizer)._pad is not PreTrainedTokenizerBase._pad:
        # ChatGLM's own _pad asserts left padding (training pads on the right) and predates the padding_side
        # argument transformers now passes; the library's _pad reads the same fields.
        tokenizer._pad = PreTrainedTokenizerBase._pad.__get__(tokenizer)
    return tokenizer


def resolve_attn_implementation(requested: str, packing: bool) -> str | None:
    """The attention kernel for `auto`: flash-attention when installed (it reads packed rows as variable-length
    sequences), flex attention for packed rows on a GPU (its block mask skips the masked blocks), else None:
    transformers' own default for the architecture (sdpa where the model supports it, eager for BLOOM).
    Every choice is exact on packed rows: transformers derives the per-example mask from position_ids."""
    import importlib.util

    import torch

    if requested != "auto":
        return requested
    if not torch.cuda.is_available():
        return None
    if importlib.util.find_spec("flash_attn_interface") is not None:
        return "flash_attention_3"
    if importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "flex_attention" if packing else None


def quantization_config(model: ModelSettings, precision: str) -> Any:
    """bitsandbytes settings for `quantization_bit` (None when off): NF4/FP4 with the matmuls in the run's
    precision, or LLM.int8."""
    if model.quantization_bit is None:
        return None
    from transformers import BitsAndBytesConfig

    if model.quantization_bit == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=model.quantization_type,
        bnb_4bit_use_double_quant=model.double_quantization,
        bnb_4bit_compute_dtype=torch_dtype(precision),
    )


@contextlib.contextmanager
def whole_weights(args: Any, when: bool = True) -> Iterator[None]:
    """Load whole weights (`when` it is asked) even under ZeRO-3. Once a stage's TrainingArguments exist with a
    ZeRO-3 config, from_pretrained places each weight straight into its shard (deepspeed.zero.Init). What changes or
    copies weights before training needs them whole: folding in an SFT adapter, or a frozen reference cast to the
    run's precision; DeepSpeed partitions them when training starts."""
    from transformers.integrations.deepspeed import set_hf_deepspeed_config, unset_hf_deepspeed_config

    registered = getattr(args, "hf_deepspeed_config", None) if when else None
    if registered is not None:
        unset_hf_deepspeed_config()
    try:
        yield
    finally:
        if registered is not None:
            set_hf_deepspeed_config(registered)


def load_training_model(
    model: ModelSettings,
    precision: str,
    use_lora: bool,
    packing: bool = False,
    auto_class: Any = None,
    **kwargs: Any,
) -> Any:
    """The model a training stage starts from, loaded as its settings say.

    Full fine-tuning keeps fp32 weights (mixed precision autocasts the matmuls); LoRA keeps the frozen base in
    the run's precision and PEFT the adapter in fp32; QLoRA (`quantization_bit`) keeps the base in 4 or 8 bits.
    """
    import torch

    attn = resolve_attn_implementation(model.attn_implementation, packing)
    quantization = quantization_config(model, precision)
    dtype = torch_dtype(precision) if use_lora else torch.float32
    if quantization is not None:
        kwargs["quantization_config"] = quantization
        if torch.cuda.is_available():
            kwargs.setdefault("device_map", {"": torch.cuda.current_device()})
    from transformers.integrations import is_deepspeed_zero3_enabled

    # Under a ZeRO-3 config (the run's TrainingArguments exist) from_pretrained builds each weight inside
    # deepspeed.zero.Init, already sharded.
    if quantization is None and is_deepspeed_zero3_enabled():
        import deepspeed

        deepspeed.init_distributed()  # zero.Init sizes its shards by DeepSpeed's view of the process group
    loaded = load_causal_lm(model.model_name_or_path, dtype=dtype, attn_implementation=attn,
                            auto_class=auto_class, trust_remote_code=model.trust_remote_code, **kwargs)  # fmt: skip
    attn = loaded.config._attn_implementation  # what transformers settled on, for the log and the run record
    if quantization is not None and not torch.cuda.is_available():
        # bitsandbytes 0.50 repacks a 4-bit weight for a faster CPU kernel the first time its layer runs in eval
        # mode without gradients (evaluation, generation), and that kernel has no backward: training after it
        # would silently stop reaching the layers below. Keep the trainable layout on CPU.
        for module in loaded.modules():
            if hasattr(module, "support_avx512bf16_for_cpu"):
                module.support_avx512bf16_for_cpu = False
    quantised = ""
    if quantization is not None:
        kind = model.quantization_type if model.quantization_bit == 4 else "LLM.int8"
        quantised = f", base quantised to {model.quantization_bit} bits ({kind})"
    logger.info("model %s: attention %s, weights %s%s", model.model_name_or_path, attn, str(dtype).split(".")[-1],
                quantised)  # fmt: skip
    sharded = [p for p in loaded.parameters() if hasattr(p, "ds_tensor")]
    if sharded:  # loaded under a ZeRO-3 config: deepspeed.zero.Init placed each weight in its shard
        held, whole = sum(p.ds_tensor.numel() for p in sharded), sum(p.ds_numel for p in sharded)
        logger.info("ZeRO-3: weights sharded as they loaded; this process holds %s of %s values",
                    f"{held:,}", f"{whole:,}")  # fmt: skip
    return loaded


def load_causal_lm(
    path: str, dtype: Any, auto_class: Any = None, trust_remote_code: bool = False, **kwargs: Any
) -> Any:
    """A causal LM (or another `auto_class`) from a local folder or a hub name, with a clear message when
    neither can be had, or when it needs its own code and `trust_remote_code` is off."""
    from transformers import AutoModelForCausalLM

    try:
        with refusing_remote_code(path):
            return (auto_class or AutoModelForCausalLM).from_pretrained(
                path, dtype=dtype, trust_remote_code=trust_remote_code, **kwargs
            )
    except OSError as err:
        if not Path(path).exists():
            raise OSError(
                f"cannot load model '{path}': no such local folder, and the hub could not provide it "
                f"(offline? set HF_ENDPOINT or download it first). Original error: {err}"
            ) from None
        raise


def decoder_layers(model: Any) -> Any:
    """The model's stack of transformer blocks: the largest ModuleList (LLaMA `layers`, BLOOM `h`)."""
    import torch

    stacks = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList) and len(m) > 0]
    if not stacks:
        raise ValueError(f"no stack of decoder layers found in {type(model).__name__}")
    return max(stacks, key=lambda m: sum(p.numel() for p in m.parameters()))


def compile_decoder_layers(model: Any) -> int:
    """torch.compile each decoder block on its own (regional compilation): the blocks are alike, so one
    compiled graph serves them all, and the head and loss stay eager, where liger's fused loss and our
    chunked loss run (dynamo traces neither). Returns the number of blocks."""
    layers = decoder_layers(model)
    for layer in layers:
        layer.compile()
    return len(layers)


def avoid_cudnn_attention() -> None:
    """Keep sdpa off cuDNN's attention kernels (flash or memory-efficient ones serve instead). cuDNN builds an
    execution plan for every new shape, which costs the CPU hundreds of milliseconds; where the batch's width
    changes every step (PPO: new prompts, new response lengths) the plans are never reused."""
    import torch

    torch.backends.cuda.enable_cudnn_sdp(False)


def freeze_all_but_last_layers(model: Any, trainable_layers: int) -> list[str]:
    """Freeze fine-tuning: only the last `trainable_layers` decoder blocks learn. Returns their names."""
    layers = decoder_layers(model)
    if not 0 < trainable_layers <= len(layers):
        raise ValueError(f"trainable_layers must be between 1 and {len(layers)}, got {trainable_layers}")
    for param in model.parameters():
        param.requires_grad_(False)
    trainable = set()
    for block in list(layers)[-trainable_layers:]:
        for param in block.parameters():
            param.requires_grad_(True)
            trainable.add(id(param))
    return [name for name, p in model.named_parameters() if id(p) in trainable]


def count_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts; a ZeRO-3 shard counts as its whole weight (ds_numel)."""
    sizes = [(getattr(p, "ds_numel", p.numel()), p.requires_grad) for p in model.parameters()]
    return sum(n for n, trains in sizes if trains), sum(n for n, _ in sizes)


def adapter_tokenizer_path(adapter_path: str, base_path: str) -> str:
    """The tokenizer saved with a LoRA adapter (finetune.py saves one there), else the base model's."""
    return adapter_path if (Path(adapter_path) / "tokenizer_config.json").is_file() else base_path


def load_causal_lm_with_adapter(
    base_path: str, adapter_path: str, dtype: Any, trust_remote_code: bool = False
) -> Any:
    """The base causal LM with a saved LoRA (PEFT) adapter on top, as a `PeftModel`."""
    if not (Path(adapter_path) / "adapter_config.json").is_file():
        raise OSError(f"{adapter_path} is not a LoRA adapter folder (no adapter_config.json in it)")
    from peft import PeftModel

    base = load_causal_lm(base_path, dtype=dtype, trust_remote_code=trust_remote_code)
    return PeftModel.from_pretrained(base, adapter_path)


def merge_adapter(model: Any, adapter_path: str) -> Any:
    """Fold a saved LoRA adapter into `model`'s weights and return the plain model.

    Works for any head on the same trunk (a causal-LM SFT adapter into a sequence-classification model
    for reward modelling): the adapter's modules sit in the shared decoder layers.
    """
    if not (Path(adapter_path) / "adapter_config.json").is_file():
        raise OSError(f"{adapter_path} is not a LoRA adapter folder (no adapter_config.json in it)")
    from peft import PeftModel

    return PeftModel.from_pretrained(model, adapter_path).merge_and_unload()
