"""BLEU-4 and ROUGE-1/2/L for Chinese and English answers, computed the way LLaMA-Factory reports them.

Numbers are only comparable across projects when the tokenisation matches, so this follows
LLaMA-Factory's `compute_metrics` definition exactly:

- ROUGE-1/2/L: the F-score of `rouge-chinese` on the jieba-segmented text, tokens joined by spaces
  (English words come out of jieba whole, Chinese is cut into words).
- BLEU-4: NLTK `sentence_bleu` on single characters (reference and prediction as lists of characters),
  smoothed with `SmoothingFunction().method3` so short answers without 4-gram matches are not all 0.
- Each score is multiplied by 100 per sample and the corpus score is the mean over samples.

An empty (or whitespace-only) prediction or reference scores 0 on every metric instead of raising.

    from common.metrics import score_predictions
    means, per_sample = score_predictions(["我爱北京"], ["我爱上海"])
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from statistics import fmean
from typing import Any

METRIC_NAMES = ("bleu-4", "rouge-1", "rouge-2", "rouge-l")
_ZERO = dict.fromkeys(METRIC_NAMES, 0.0)


def _jieba() -> Any:
    import jieba

    # jieba prints its dictionary-loading chatter at DEBUG on every first use; keep logs readable.
    jieba.setLogLevel(logging.WARNING)
    return jieba


def segment(text: str) -> str:
    """jieba words joined by single spaces (the text rouge-chinese scores)."""
    return " ".join(" ".join(_jieba().cut(text)).split())


def char_bleu4(prediction: str, reference: str) -> float:
    """Character-level BLEU-4 with NIST geometric smoothing (method3), x100."""
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    if not prediction or not reference:
        return 0.0
    return 100.0 * sentence_bleu(
        [list(reference)], list(prediction), smoothing_function=SmoothingFunction().method3
    )


def score_pair(prediction: str, reference: str) -> dict[str, float]:
    """Every metric for one prediction against its reference, each x100 (0 when either is empty)."""
    from rouge_chinese import Rouge

    hypothesis, target = segment(prediction), segment(reference)
    if not hypothesis or not target:
        return dict(_ZERO)
    rouge = Rouge().get_scores(hypothesis, target)[0]
    scores = {name: 100.0 * rouge[name]["f"] for name in ("rouge-1", "rouge-2", "rouge-l")}
    scores["bleu-4"] = char_bleu4(prediction, reference)
    return {name: scores[name] for name in METRIC_NAMES}


def score_predictions(
    predictions: Sequence[str], references: Sequence[str]
) -> tuple[dict[str, float], list[dict[str, float]]]:
    """(mean of each metric over samples, per-sample scores in input order)."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    per_sample = [score_pair(p, r) for p, r in zip(predictions, references, strict=True)]
    means = {name: fmean(s[name] for s in per_sample) if per_sample else 0.0 for name in METRIC_NAMES}
    return means, per_sample
