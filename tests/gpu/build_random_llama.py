"""A Llama-shaped model of ~0.52 B parameters with random weights and the tiny models' tokenizer
(vocab 4096), for the GPU checks of the RLHF scripts: python3 tests/gpu/build_random_llama.py /tmp/llama-0.5b"""

import shutil
import sys

import torch
from transformers import LlamaConfig, LlamaForCausalLM

out = sys.argv[1]
torch.manual_seed(0)
config = LlamaConfig(vocab_size=4096, hidden_size=1536, intermediate_size=4096, num_hidden_layers=20,
                     num_attention_heads=12, num_key_value_heads=4, max_position_embeddings=2048,
                     bos_token_id=1, eos_token_id=2, pad_token_id=3, tie_word_embeddings=False)  # fmt: skip
model = LlamaForCausalLM(config)
print(f"model parameters: {sum(p.numel() for p in model.parameters()) / 1e9:.3f} B")
model.save_pretrained(out)
for name in ("tokenizer.json", "tokenizer_config.json"):
    shutil.copy(f"models/tiny-llama/{name}", f"{out}/{name}")
