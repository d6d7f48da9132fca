"""Model families: default LoRA target modules and chat template per architecture (config.model_type).

    python -m common.families              # print the table
    python -m common.families models/tiny-bloom   # the targets `all` resolves to for that model

LoRA targets follow each family's attention projections as BELLE and LLaMA-Factory train them:
fused query/key/value matrices where the architecture has one (BLOOM, Falcon, ChatGLM `query_key_value`,
Baichuan `W_pack`, Qwen v1 `c_attn`, InternLM2 `wqkv`), DeepSeek-V3's latent-attention projections (it has no
q_proj/v_proj), otherwise the query and value projections. The template is the family's current chat model
(Qwen2.5 for qwen2); the note names the template of older or sibling checkpoints of the same architecture.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any


@dataclasses.dataclass(frozen=True)
class Family:
    lora_targets: tuple[str, ...]
    template: str
    note: str = ""


FAMILIES: dict[str, Family] = {
    "llama": Family(
        ("q_proj", "v_proj"),
        "llama2",
        "Llama 1/2/3, Chinese-LLaMA-Alpaca(-2), Vicuna, Yi, DeepSeek LLM (use --template llama3 / "
        "llama2_zh / vicuna / belle / yi / deepseek as the checkpoint was trained)",
    ),  # fmt: skip
    "llama4_text": Family(("q_proj", "v_proj"), "llama4", "Llama 4 (text model)"),
    "llama4": Family(("q_proj", "v_proj"), "llama4", "Llama 4 (multimodal checkpoint)"),
    "mistral": Family(("q_proj", "v_proj"), "mistral", "Mistral v0.1/v0.2; v0.3 uses --template mistral_v3"),
    "mixtral": Family(("q_proj", "v_proj"), "mistral", "Mixtral 8x7B; 8x22B uses --template mistral_v3"),
    "ministral": Family(("q_proj", "v_proj"), "ministral", "Ministral 8B (Tekken)"),
    "qwen2": Family(("q_proj", "v_proj"), "qwen", "Qwen2.5 (Qwen1.5 / Qwen2: --template chatml)"),
    "qwen3": Family(
        ("q_proj", "v_proj"), "qwen3", "Qwen3 hybrid thinking; Qwen3-2507 Instruct: qwen3_nothink"
    ),
    "qwen3_moe": Family(("q_proj", "v_proj"), "qwen3", "Qwen3 MoE"),
    "qwen": Family(("c_attn",), "chatml", "Qwen (v1), trust_remote_code"),
    "bloom": Family(
        ("query_key_value",), "bloom", "BLOOM / BLOOMZ; BELLE's BLOOM models use --template belle"
    ),
    "falcon": Family(("query_key_value",), "falcon"),
    "chatglm": Family(
        ("query_key_value",), "chatglm2", "ChatGLM2-6B (ChatGLM3: --template chatglm3), trust_remote_code"
    ),
    "glm": Family(("q_proj", "v_proj"), "glm4", "GLM-4-9B-chat (-hf checkpoints)"),
    "glm4": Family(("q_proj", "v_proj"), "glm4", "GLM-4-0414"),
    "baichuan": Family(("W_pack",), "baichuan2", "Baichuan 1 (--template baichuan) and 2, trust_remote_code"),
    "internlm": Family(("q_proj", "v_proj"), "intern", "InternLM (v1), trust_remote_code"),
    "internlm2": Family(("wqkv",), "intern2", "InternLM2 / 2.5, trust_remote_code (fused wqkv)"),
    "internlm3": Family(("q_proj", "v_proj"), "intern2", "InternLM3"),
    "xverse": Family(("q_proj", "v_proj"), "xverse", "XVERSE, trust_remote_code"),
    "gemma": Family(("q_proj", "v_proj"), "gemma", "Gemma 1"),
    "gemma2": Family(("q_proj", "v_proj"), "gemma", "Gemma 2"),
    "gemma3_text": Family(("q_proj", "v_proj"), "gemma3", "Gemma 3 (text model, 1B)"),
    "gemma3": Family(("q_proj", "v_proj"), "gemma3", "Gemma 3 (multimodal checkpoint)"),
    # multi-head latent attention: the query's low-rank pair and the compressed key/value projections
    "deepseek_v3": Family(
        ("q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj"),
        "deepseek3",
        "DeepSeek-V3 (R1: --template deepseekr1)",
    ),  # fmt: skip
}


def family_of(model_type: str) -> Family | None:
    return FAMILIES.get(model_type)


def all_linear_names(model: Any) -> list[str]:
    """Short names of every nn.Linear (and Conv1D, as GPT-2-style blocks use) except the output head:
    what `lora_target_modules: ["all"]` means. The head stays full-rank: adapting it ties LoRA to the vocab."""
    import torch

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    names = set()
    for full_name, module in model.named_modules():
        if module is head:
            continue
        if isinstance(module, torch.nn.Linear) or type(module).__name__ == "Conv1D":
            if "lora_" in full_name:
                continue
            names.add(full_name.split(".")[-1])
    return sorted(names)


def lora_target_modules(model: Any, requested: list[str] | None, model_type: str | None = None) -> list[str]:
    """The module names LoRA adapts: the request, `all` resolved explicitly, or the default of the family
    (`model_type` when the user names one, else the weights' config.model_type)."""
    if requested == ["all"]:
        return all_linear_names(model)
    if requested:
        return list(requested)
    model_type = model_type or model.config.model_type
    family = family_of(model_type)
    if family is None:
        raise ValueError(f"no default LoRA targets for model_type {model_type!r} "
                         f"(known: {', '.join(FAMILIES)}); set lora_target_modules, or [\"all\"]")  # fmt: skip
    return list(family.lora_targets)


def format_table() -> str:
    rows = [f"{'model_type':<12} {'LoRA targets':<18} {'template':<10} note"]
    for name, family in FAMILIES.items():
        rows.append(f"{name:<12} {','.join(family.lora_targets):<18} {family.template:<10} {family.note}")
    return "\n".join(rows)


if __name__ == "__main__":
    # python -m common.families                    the table
    # python -m common.families FOLDER [--trust_remote_code]   the Linear names of that model (what "all" adapts)
    arguments = [a for a in sys.argv[1:] if a != "--trust_remote_code"]
    if arguments:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM

        trust = "--trust_remote_code" in sys.argv
        config = AutoConfig.from_pretrained(arguments[0], trust_remote_code=trust)
        with torch.device("meta"):  # the module tree without reading or allocating any weights
            model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust)
        print(", ".join(all_linear_names(model)))
    else:
        print(format_table())
