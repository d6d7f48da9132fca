"""Model families: default LoRA target modules and chat template per architecture (config.model_type).

    python -m common.families              # print the table
    python -m common.families models/tiny-bloom   # the targets `all` resolves to for that model

LoRA targets follow each family's attention projections as BELLE and LLaMA-Factory train them:
fused query/key/value matrices where the architecture has one (BLOOM, Falcon, ChatGLM `query_key_value`,
Baichuan `W_pack`, Qwen v1 `c_attn`), otherwise the query and value projections.
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
        "Llama 1/2/3, Chinese-LLaMA-Alpaca, Vicuna (use --template "
        "llama3 / vicuna / belle as the checkpoint was trained)",
    ),  # fmt: skip
    "mistral": Family(("q_proj", "v_proj"), "mistral"),
    "mixtral": Family(("q_proj", "v_proj"), "mistral"),
    "qwen2": Family(("q_proj", "v_proj"), "chatml", "Qwen1.5 / Qwen2"),
    "qwen": Family(("c_attn",), "chatml", "Qwen (v1), trust_remote_code"),
    "bloom": Family(
        ("query_key_value",), "bloom", "BLOOM / BLOOMZ; BELLE's BLOOM models use --template belle"
    ),
    "falcon": Family(("query_key_value",), "falcon"),
    "chatglm": Family(("query_key_value",), "chatglm2", "ChatGLM2-6B, trust_remote_code"),
    "baichuan": Family(("W_pack",), "baichuan2", "Baichuan 1 (--template baichuan) and 2, trust_remote_code"),
    "internlm": Family(("q_proj", "v_proj"), "intern", "InternLM (v1), trust_remote_code"),
    "xverse": Family(("q_proj", "v_proj"), "xverse", "XVERSE, trust_remote_code"),
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
    rows = [f"{'model_type':<10} {'LoRA targets':<18} {'template':<10} note"]
    for name, family in FAMILIES.items():
        rows.append(f"{name:<10} {','.join(family.lora_targets):<18} {family.template:<10} {family.note}")
    return "\n".join(rows)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        from transformers import AutoModelForCausalLM

        print(", ".join(all_linear_names(AutoModelForCausalLM.from_pretrained(sys.argv[1]))))
    else:
        print(format_table())
