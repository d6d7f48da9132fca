"""Extend a base tokenizer with Chinese pieces learnt by SentencePiece (Chinese-LLaMA-Alpaca's idea).

    python scripts/merge_tokenizer.py --base_tokenizer models/tiny-llama \\
        --corpus 'data_dir/pretrain/zh_*.txt' --vocab_size 4000 --output_dir trained_models/zh-tokenizer

A SentencePiece unigram model is trained on the corpus; its pieces that contain a CJK character and that
the base tokenizer lacks are appended as new tokens (ids after the base vocabulary, which is unchanged, so
the model's embedding rows keep their meaning). The log shows the token count of a sample before/after.
"""

from __future__ import annotations

import dataclasses
import glob
import logging
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a file: find `common`

from common.config import ConfigError, config_field, parse_config  # noqa: E402
from common.runs import run_as_script, setup_logging, tool_output_dir  # noqa: E402
from common.settings import RemoteCodeSettings  # noqa: E402

logger = logging.getLogger("merge_tokenizer")


@dataclasses.dataclass
class MergeTokenizerConfig(RemoteCodeSettings):
    base_tokenizer: str = config_field("models/tiny-llama", "tokenizer folder to extend")
    corpus: str = config_field("data_dir/pretrain/zh_*.txt", "glob of Chinese text files")
    vocab_size: int = config_field(4000, "SentencePiece vocabulary size to train")
    min_piece_chars: int = config_field(1, "add only pieces of at least this many characters")
    output_dir: str = config_field("trained_models/zh-tokenizer", "where the extended tokenizer goes")
    overwrite: bool = config_field(False, "allow writing into a non-empty output_dir")


def is_cjk(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def main(argv: list[str] | None = None) -> Path:
    setup_logging()
    # ---- Config -------------------------------------------------------------------------------
    config = parse_config(MergeTokenizerConfig, argv, description=__doc__)
    output_dir = tool_output_dir(config.output_dir, config.overwrite, inputs=[config.base_tokenizer])
    files = sorted(glob.glob(config.corpus))
    if not files:
        raise ConfigError(f"--corpus {config.corpus!r} matches no file")
    import sentencepiece as spm
    from transformers import AutoTokenizer

    # ---- Train SentencePiece ------------------------------------------------------------------
    with tempfile.TemporaryDirectory() as tmp:
        spm.SentencePieceTrainer.train(input=",".join(files), model_prefix=f"{tmp}/zh", vocab_size=config.vocab_size,
                                       model_type="unigram", character_coverage=0.9995,
                                       hard_vocab_limit=False, minloglevel=2)  # fmt: skip
        processor = spm.SentencePieceProcessor(model_file=f"{tmp}/zh.model")
        pieces = [processor.id_to_piece(i).lstrip("\u2581") for i in range(processor.get_piece_size())]

    # ---- Merge into the base ------------------------------------------------------------------
    from common.modeling import refusing_remote_code

    with refusing_remote_code(config.base_tokenizer):
        tokenizer = AutoTokenizer.from_pretrained(
            config.base_tokenizer, trust_remote_code=config.trust_remote_code
        )
    sample = Path(files[0]).read_text(encoding="utf-8").splitlines()[0]
    before = len(tokenizer(sample, add_special_tokens=False)["input_ids"])
    base_vocab = tokenizer.get_vocab()
    new = sorted({p for p in pieces if is_cjk(p) and len(p) >= config.min_piece_chars and p not in base_vocab},
                 key=lambda p: (-len(p), p))  # fmt: skip
    # Added tokens are matched before the BPE model runs, so longer pieces go first in the sort above.
    added = tokenizer.add_tokens(new)
    after = len(tokenizer(sample, add_special_tokens=False)["input_ids"])
    logger.info("base %d tokens + %d Chinese pieces = %d", len(base_vocab), added, len(tokenizer))
    logger.info("sample of %d characters: %d tokens before, %d after", len(sample), before, after)
    output_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(output_dir))
    print(f"Extended tokenizer ({len(tokenizer)} tokens) saved in {output_dir}")
    return output_dir


if __name__ == "__main__":
    run_as_script(main)
