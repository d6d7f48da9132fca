"""Every tiny architecture trains one LoRA step with its family's default targets and template:
the adapter moves, the base does not; `all` is every linear layer but the output head."""

from __future__ import annotations

import pytest
import torch

from common.families import FAMILIES, all_linear_names, lora_target_modules
from common.modeling import load_tokenizer
from common.templates import TEMPLATES, encode_conversation, get_template

ARCHS = ["llama", "bloom", "falcon", "qwen2", "mistral", "qwen3", "glm4", "gemma3", "deepseek_v3", "llama4"]
MESSAGES = [
    {"role": "user", "content": "把下面的句子翻译成英文：今天天气很好。"},
    {"role": "assistant", "content": "The weather is nice today."},
    {"role": "user", "content": "Thanks!"},
    {"role": "assistant", "content": "不客气。"},
]


def test_table_names_real_templates():
    assert all(f.template in TEMPLATES and f.lora_targets for f in FAMILIES.values())
    assert FAMILIES["baichuan"].lora_targets == ("W_pack",) and FAMILIES["qwen"].lora_targets == ("c_attn",)


@pytest.mark.parametrize("arch", ARCHS)
def test_one_lora_step_per_architecture(arch, tiny_models):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    path = tiny_models / f"tiny-{arch}"
    if not path.is_dir():
        pytest.skip(f"{path} not built (python scripts/build_tiny_models.py)")
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    family = FAMILIES[model.config.model_type]
    targets = lora_target_modules(model, None)
    assert targets == list(family.lora_targets)

    everything = all_linear_names(model)
    head = model.get_output_embeddings()
    assert set(targets) <= set(everything)
    assert all(not isinstance(m, torch.nn.Linear) or m is head or name.split(".")[-1] in everything
               for name, m in model.named_modules())  # fmt: skip
    assert "lm_head" not in everything

    tokenizer = load_tokenizer(str(path))
    example = encode_conversation(get_template(family.template), tokenizer, MESSAGES, cutoff_len=256)
    batch = {k: torch.tensor([v]) for k, v in example.items()}

    model = get_peft_model(
        model, LoraConfig(r=4, lora_alpha=8, target_modules=targets, task_type="CAUSAL_LM")
    )
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    adapted = [n for n in before if "lora_" in n]
    assert adapted and all(any(t in n for t in targets) for n in adapted)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and changed <= set(adapted)  # only the adapter moved
    # lora_B starts at zero, so the first step's gradient reaches every lora_B of every target.
    assert {n for n in adapted if "lora_B" in n} <= changed
