"""Build tiny, randomly initialised models of real architectures, plus their tokenizer, with no download.

    python scripts/build_tiny_models.py

writes models/tiny-llama, models/tiny-bloom, models/tiny-falcon, models/tiny-qwen2 and models/tiny-mistral, and
the newer families models/tiny-qwen3, tiny-glm4, tiny-gemma3, tiny-deepseek_v3 and tiny-llama4 (text model).
Each folder is an ordinary `save_pretrained` checkpoint (config.json, generation_config.json,
model.safetensors, tokenizer.json, tokenizer_config.json) plus build_info.json, so every other script loads it
exactly like a hub model: `AutoModelForCausalLM.from_pretrained(path)`, `AutoTokenizer.from_pretrained(path)`.

- The tokenizer is a byte-level BPE trained with the `tokenizers` library on the repo's shipped text:
  every data_dir/pretrain/*.txt plus the instruction/input/output/chosen/rejected strings of
  data_dir/sample_sft.json and data_dir/sample_preference.json (JSON lines), read in sorted order.
  Special tokens <unk>, <s>, </s>, <pad> have ids 0, 1, 2, 3. As with the real models, the llama and
  mistral (and gemma3, deepseek_v3, llama4) tokenizers put <s> in front of every encoded sequence; bloom,
  falcon, qwen2, qwen3 and glm4 add nothing.
- The models are a few million parameters each, fp32, initialised after `torch.manual_seed(seed)`.
- The same seed and text give byte-identical tokenizer.json and model.safetensors.
- An existing, non-empty target folder is an error unless --force, except when its build_info.json says it
  already holds exactly this build (same seed, vocab size, text, architecture config): then it is skipped.

Other examples:

    python scripts/build_tiny_models.py --archs llama,bloom --output_dir /tmp/models
    python scripts/build_tiny_models.py --seed 7 --vocab_size 8000 --force
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger("build_tiny_models")

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>"]  # ids 0, 1, 2, 3, in this order
UNK_ID, BOS_ID, EOS_ID, PAD_ID = 0, 1, 2, 3
MODEL_MAX_LENGTH = 2048
BUILD_INFO = "build_info.json"
BUILD_INFO_VERSION = 1  # bump when the way a build is made changes, so old builds are not taken as current

# The model's config, per architecture, before vocab size and special-token ids are filled in.
# `bos` says whether the tokenizer adds <s> in front of each sequence, as the real model's tokenizer does.
_LLAMA_LIKE = {
    "hidden_size": 256,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 688,
    "max_position_embeddings": MODEL_MAX_LENGTH,
    "tie_word_embeddings": False,
}
ARCHS: dict[str, dict[str, Any]] = {
    "llama": {"config_class": "LlamaConfig", "bos": True, "config": dict(_LLAMA_LIKE)},
    # bloom and falcon tie their input and output embeddings, like the real ones (the configs' default)
    "bloom": {
        "config_class": "BloomConfig",
        "bos": False,
        "config": {"hidden_size": 256, "n_layer": 4, "n_head": 4},
    },
    "falcon": {
        "config_class": "FalconConfig",
        "bos": False,
        "config": {
            "hidden_size": 256,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "new_decoder_architecture": False,
            "max_position_embeddings": MODEL_MAX_LENGTH,
        },
    },
    "qwen2": {"config_class": "Qwen2Config", "bos": False, "config": dict(_LLAMA_LIKE)},
    "mistral": {
        "config_class": "MistralConfig",
        "bos": True,
        "config": {**_LLAMA_LIKE, "sliding_window": None},
    },
    # Newer families (issue #13): two layers each, enough for one LoRA step per architecture in the tests.
    "qwen3": {"config_class": "Qwen3Config", "bos": False, "config": {**_LLAMA_LIKE, "num_hidden_layers": 2}},
    "glm4": {"config_class": "Glm4Config", "bos": False, "config": {**_LLAMA_LIKE, "num_hidden_layers": 2}},
    "gemma3": {
        "config_class": "Gemma3TextConfig",
        "bos": True,
        "config": {**_LLAMA_LIKE, "num_hidden_layers": 2, "head_dim": 64, "sliding_window": 512},
    },
    "deepseek_v3": {  # multi-head latent attention and a mixture of experts after one dense layer
        "config_class": "DeepseekV3Config",
        "bos": True,
        "config": {
            **_LLAMA_LIKE,
            "num_hidden_layers": 2,
            "num_key_value_heads": 4,
            "q_lora_rank": 64,
            "kv_lora_rank": 32,
            "qk_rope_head_dim": 16,
            "qk_nope_head_dim": 32,
            "v_head_dim": 32,
            "n_routed_experts": 4,
            "num_experts_per_tok": 2,
            "moe_intermediate_size": 64,
            "n_shared_experts": 1,
            "first_k_dense_replace": 1,
            "n_group": 1,
            "topk_group": 1,
        },
    },
    "llama4": {  # the text model of Llama 4 (Llama4ForCausalLM), every layer a mixture of experts
        "config_class": "Llama4TextConfig",
        "bos": True,
        "config": {
            **_LLAMA_LIKE,
            "num_hidden_layers": 2,
            "head_dim": 64,
            "num_local_experts": 2,
            "num_experts_per_tok": 1,
            "intermediate_size_mlp": 688,
            "interleave_moe_layer_step": 1,
        },
    },
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Build a byte-level BPE tokenizer from the repo's shipped text and tiny randomly initialised "
            "models of real architectures (saved to OUTPUT_DIR/tiny-<arch>), deterministically and offline."
        ),
        epilog=(
            "An existing non-empty target folder is an error unless --force; a folder whose build_info.json "
            "matches this build (seed, vocab size, text, config) is skipped, so re-running is cheap."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--archs",
        default=",".join(ARCHS),
        help=f"comma-separated architectures to build, from: {', '.join(ARCHS)}",
    )
    parser.add_argument(
        "--seed", type=int, default=42, help="torch seed set before each model is initialised"
    )
    parser.add_argument(
        "--vocab_size",
        type=int,
        default=4096,
        help="BPE vocabulary size asked of the trainer, special tokens included (smaller if the text runs out)",
    )
    parser.add_argument("--output_dir", default="models", help="each model goes to OUTPUT_DIR/tiny-<arch>")
    parser.add_argument(
        "--data_dir",
        default="data_dir",
        help="folder with pretrain/*.txt, sample_sft.json and sample_preference.json (the tokenizer's text)",
    )
    parser.add_argument(
        "--force", action="store_true", help="replace target folders that already hold something"
    )
    args = parser.parse_args(argv)

    args.arch_list = [a.strip() for a in args.archs.split(",") if a.strip()]
    unknown = [a for a in args.arch_list if a not in ARCHS]
    if unknown or not args.arch_list:
        parser.error(
            f"--archs: unknown architecture(s) {unknown or args.archs!r}; choose from {', '.join(ARCHS)}"
        )
    if len(set(args.arch_list)) != len(args.arch_list):
        parser.error(f"--archs: an architecture is named twice in {args.archs!r}")
    if args.vocab_size < 256 + len(SPECIAL_TOKENS):
        parser.error(
            f"--vocab_size must be at least {256 + len(SPECIAL_TOKENS)} (the 256 bytes plus special tokens)"
        )
    return args


def read_training_text(data_dir: Path) -> list[str]:
    """The tokenizer's training documents, in a fixed order: pretrain/*.txt (sorted), then the JSON-lines sets."""
    texts: list[str] = []
    sources: list[Path] = sorted((data_dir / "pretrain").glob("*.txt"))
    for path in sources:
        texts.append(path.read_text(encoding="utf-8"))
    for name in ("sample_sft.json", "sample_preference.json"):
        path = data_dir / name
        if not path.is_file():
            continue
        sources.append(path)
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{lineno}: not a JSON line ({err})") from None
            for key in ("instruction", "input", "output", "chosen", "rejected"):
                value = record.get(key)
                if isinstance(value, str) and value:
                    texts.append(value)
    if not sources:
        raise FileNotFoundError(
            f"no training text for the tokenizer: expected {data_dir}/pretrain/*.txt, {data_dir}/sample_sft.json "
            f"or {data_dir}/sample_preference.json (run from the repo root, or pass --data_dir)"
        )
    if not any(t.strip() for t in texts):
        raise ValueError(f"the training text under {data_dir} is empty ({', '.join(map(str, sources))})")
    logger.info(
        "training text: %d documents, %d characters, from %s",
        len(texts),
        sum(map(len, texts)),
        ", ".join(map(str, sources)),
    )
    return texts


def text_sha256(texts: list[str]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        data = text.encode("utf-8")
        digest.update(len(data).to_bytes(8, "little"))  # length-prefixed, so document boundaries count
        digest.update(data)
    return digest.hexdigest()


def build_info_for(arch: str, args: argparse.Namespace, sha: str, versions: dict[str, str]) -> dict[str, Any]:
    """What identifies a build: a target holding the same info is not rebuilt."""
    spec = ARCHS[arch]
    return {
        "build_info_version": BUILD_INFO_VERSION,
        "arch": arch,
        "config_class": spec["config_class"],
        "config": spec["config"],
        "tokenizer_adds_bos": spec["bos"],
        "seed": args.seed,
        "vocab_size_requested": args.vocab_size,
        "special_tokens": SPECIAL_TOKENS,
        "text_sha256": sha,
        "versions": versions,
    }


def check_target(target: Path, info: dict[str, Any], force: bool) -> str:
    """'build', 'skip' (already holds this build) or raise: never overwrite something without --force."""
    if not target.exists():
        return "build"
    if not target.is_dir():
        if force:
            return "build"
        raise FileExistsError(f"{target} exists and is not a folder; move it away or pass --force")
    if not any(target.iterdir()):
        return "build"
    info_path = target / BUILD_INFO
    existing = None
    if info_path.is_file():
        try:
            existing = json.loads(info_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            existing = None
    wanted = json.loads(json.dumps(info))  # as it reads back from the file (tuples become lists, ...)
    # build_info.json is written last, so its presence also means the build finished
    if isinstance(existing, dict) and all(existing.get(k) == v for k, v in wanted.items()):
        return "skip"
    if force:
        return "build"
    if not isinstance(existing, dict):
        why = "it has no readable build_info.json"
    else:
        differ = sorted(k for k, v in wanted.items() if existing.get(k) != v)
        why = f"its build_info.json differs in: {', '.join(differ)}"
    raise FileExistsError(f"{target} already exists and is not empty ({why}); pass --force to replace it")


def train_tokenizer(texts: list[str], vocab_size: int) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    # no normalizer: decode(encode(text)) must give the text back exactly
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer, length=len(texts))
    for i, token in enumerate(SPECIAL_TOKENS):
        if tokenizer.token_to_id(token) != i:
            raise RuntimeError(f"special token {token} got id {tokenizer.token_to_id(token)}, expected {i}")
    return tokenizer


def hf_tokenizer(base: Any, add_bos: bool) -> Any:
    """The trained tokenizer as a transformers fast tokenizer, with or without <s> in front of each sequence."""
    from tokenizers import Tokenizer, processors
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer.from_str(base.to_str())  # a copy: the post-processor differs per architecture
    if add_bos:  # like LLaMA's tokenizer: <s> A, and <s> A <s> B for pairs
        tokenizer.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", BOS_ID)]
        )
    else:
        tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        model_max_length=MODEL_MAX_LENGTH,
        padding_side="right",
    )


def save_tokenizer(tokenizer: Any, folder: Path, arch: str) -> Any:
    """Save next to the model and return the tokenizer as `AutoTokenizer.from_pretrained(folder)` gives it.

    transformers picks the tokenizer class from the model type for some architectures (qwen2 gets
    Qwen2Tokenizer, which sets Qwen's own normalizer and pre-tokenizer over our vocabulary, as for the real
    model). When that differs from what was saved, save the tokenizer as loaded, so tokenizer.json and
    AutoTokenizer agree.
    """
    from transformers import AutoTokenizer

    tokenizer.save_pretrained(str(folder))
    loaded = AutoTokenizer.from_pretrained(str(folder))
    if loaded.backend_tokenizer.to_str() != tokenizer.backend_tokenizer.to_str():
        logger.info(
            "%s: AutoTokenizer loads this as %s, with its own pipeline over the same vocabulary; saving it as loaded",
            arch,
            type(loaded).__name__,
        )
        loaded.save_pretrained(str(folder))
        loaded = AutoTokenizer.from_pretrained(str(folder))
    return loaded


def check_tokenizer(tokenizer: Any, add_bos: bool, vocab_size: int) -> None:
    """Exact round trip of Chinese and English, <s> in front only where the architecture wants it."""
    expected_ids = {"unk": UNK_ID, "bos": BOS_ID, "eos": EOS_ID, "pad": PAD_ID}
    got_ids = {name: getattr(tokenizer, f"{name}_token_id") for name in expected_ids}
    if got_ids != expected_ids or len(tokenizer) != vocab_size:
        raise RuntimeError(
            f"tokenizer has special ids {got_ids} and {len(tokenizer)} tokens; expected {expected_ids}"
        )
    samples = [
        "Hello, world!  Two spaces,\ttabs and\nnewlines.",
        "今天天气很好，我们去公园散步吧。",
        "混合 mixed 文本 text: 1+1=2 ✓ 🙂",
    ]
    for text in samples:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        decoded = tokenizer.decode(ids)
        if decoded != text:
            raise RuntimeError(f"tokenizer does not round-trip {text!r}: got {decoded!r}")
        with_special = tokenizer(text)["input_ids"]
        expected = [BOS_ID, *ids] if add_bos else ids
        if with_special != expected:
            raise RuntimeError(
                f"add_special_tokens=True gave {with_special[:5]}..., expected {expected[:5]}..."
            )


def build_model(arch: str, vocab_size: int, seed: int) -> Any:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, GenerationConfig

    spec = ARCHS[arch]
    config_class = getattr(transformers, spec["config_class"])
    config = config_class(
        **spec["config"],
        vocab_size=vocab_size,
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,
        pad_token_id=PAD_ID,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config = GenerationConfig(bos_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=PAD_ID)
    return model


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()

    # --- Read the training text, and decide per target: build, skip or refuse --------------------------
    output_root = Path(args.output_dir)
    versions = {name: importlib.metadata.version(name) for name in ("tokenizers", "torch", "transformers")}
    plan: dict[str, tuple[Path, dict[str, Any]]] = {}
    try:  # every refusal comes before anything is written
        texts = read_training_text(Path(args.data_dir))
        sha = text_sha256(texts)
        for arch in args.arch_list:
            target = output_root / f"tiny-{arch}"
            info = build_info_for(arch, args, sha, versions)
            if check_target(target, info, args.force) == "skip":
                logger.info("%s already holds this build (build_info.json matches); skipping it", target)
            else:
                plan[arch] = (target, info)
    except (OSError, ValueError) as err:
        logger.error("%s", err)
        return 1
    if not plan:
        logger.info("nothing to build: every target is up to date")
        return 0

    # --- Train the tokenizer ----------------------------------------------------------------------------
    # The BPE trainer gave identical tokenizer.json across runs with RAYON_NUM_THREADS 1..16 (tokenizers
    # 0.23), but the merges it picks should not hang on thread scheduling in any version, and one thread
    # costs a fraction of a second on this much text: pin it before tokenizers is first imported.
    os.environ["RAYON_NUM_THREADS"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one shard of a few MB: the bar is noise
    t0 = time.perf_counter()
    base_tokenizer = train_tokenizer(texts, args.vocab_size)
    got = base_tokenizer.get_vocab_size()
    logger.log(
        logging.INFO if got == args.vocab_size else logging.WARNING,
        "trained byte-level BPE: %d tokens (asked for %d%s) in %.2fs",
        got,
        args.vocab_size,
        "" if got == args.vocab_size else "; the text has no more pairs seen twice",
        time.perf_counter() - t0,
    )

    # --- Build, check and save each model with its tokenizer --------------------------------------------
    output_root.mkdir(parents=True, exist_ok=True)
    for arch, (target, info) in plan.items():
        t0 = time.perf_counter()
        tokenizer = hf_tokenizer(base_tokenizer, ARCHS[arch]["bos"])
        vocab_size = len(tokenizer)
        model = build_model(arch, vocab_size, args.seed)
        n_params = sum(p.numel() for p in model.parameters())

        # write into a fresh folder beside the target, then swap it in, so a failed build leaves no half folder
        staging = output_root / f".tiny-{arch}.building"
        if staging.exists():
            shutil.rmtree(staging)
        model.save_pretrained(str(staging))
        tokenizer = save_tokenizer(tokenizer, staging, arch)
        check_tokenizer(tokenizer, ARCHS[arch]["bos"], vocab_size)
        info = {
            **info,
            "tokenizer_class": type(tokenizer).__name__,
            "vocab_size": vocab_size,
            "parameters": n_params,
        }
        (staging / BUILD_INFO).write_text(
            json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        if target.exists():
            logger.warning("--force: replacing %s", target)
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink()
        staging.rename(target)
        logger.info(
            "%s: %s, %.2fM parameters (%d), vocab %d, saved in %.2fs",
            target,
            ARCHS[arch]["config_class"].removesuffix("Config"),
            n_params / 1e6,
            n_params,
            vocab_size,
            time.perf_counter() - t0,
        )

    # --- Summary ----------------------------------------------------------------------------------------
    logger.info("built %s in %.1fs", ", ".join(plan), time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(main())
