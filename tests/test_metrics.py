"""BLEU-4 / ROUGE against values worked out by hand from the definitions (LLaMA-Factory's):
ROUGE F on jieba words (rouge-chinese counts each distinct n-gram once), BLEU-4 on characters with
NIST smoothing (method3: the k-th n-gram order with no match gets precision 1 / (2^k * its count))."""

from __future__ import annotations

import math

import pytest

from common.metrics import METRIC_NAMES, char_bleu4, score_pair, score_predictions, segment

# rouge-chinese adds 1e-8 to the F-score denominator, so a perfect score is 100 * (1 - 5e-9).
approx = lambda value: pytest.approx(value, abs=1e-5)  # noqa: E731


def test_identical_text_scores_100_in_english_and_chinese():
    for text in ("the model answers every question in full", "北京是中国的首都，也是一座历史悠久的城市。"):
        assert score_pair(text, text) == {name: approx(100.0) for name in METRIC_NAMES}


def test_disjoint_text_scores_0():
    # No shared word, and no shared character (so no matching character n-gram of any order).
    assert score_pair("hello", "cat, I am") == dict.fromkeys(METRIC_NAMES, 0.0)
    assert score_pair("今天下雨", "我爱猫咪") == dict.fromkeys(METRIC_NAMES, 0.0)


@pytest.mark.parametrize(
    ("prediction", "reference"), [("", "a reference"), ("an answer", ""), ("   \n", "x y z"), ("", "")]
)
def test_empty_prediction_or_reference_scores_0(prediction, reference):
    assert score_pair(prediction, reference) == dict.fromkeys(METRIC_NAMES, 0.0)


def test_english_partial_match_worked_by_hand():
    # Words: {the, cat, sat} vs {the, cat, ran}: 2 of 3 shared -> ROUGE-1 F = 2/3.
    # Bigrams {the cat, cat sat} vs {the cat, cat ran}: 1 of 2 -> ROUGE-2 F = 1/2.
    # Longest common word subsequence "the cat" = 2 of 3 words -> ROUGE-L F = 2/3.
    # Characters, clipped matches "the cat sat" vs "the cat ran" (both 11 characters, so no brevity penalty):
    #   1-grams 9/11 (t x3 clipped to 2, s unmatched), 2-grams 7/10 ("at" x2 clipped to 1; " s", "sa" miss),
    #   3-grams 6/9, 4-grams 5/8; BLEU = (9/11 * 7/10 * 6/9 * 5/8) ** (1/4).
    scores = score_pair("the cat sat", "the cat ran")
    assert scores["rouge-1"] == approx(100 * 2 / 3)
    assert scores["rouge-2"] == approx(100 * 1 / 2)
    assert scores["rouge-l"] == approx(100 * 2 / 3)
    assert scores["bleu-4"] == approx(100 * (9 / 11 * 7 / 10 * 6 / 9 * 5 / 8) ** 0.25)


def test_char_bleu_smooths_missing_ngram_orders_with_method3():
    # "abcd" vs "abce": 1-grams 3/4, 2-grams 2/3, 3-grams 1/2, 4-grams 0/1 -> first zero order: 1/(2*1).
    assert char_bleu4("abcd", "abce") == approx(100 * (3 / 4 * 2 / 3 * 1 / 2 * 1 / 2) ** 0.25)
    # Chinese by character: 我爱北京 vs 我爱上海: 2/4, 1/3, then 3-grams 0/2 -> 1/(2*2), 4-grams 0/1 -> 1/(4*1).
    assert char_bleu4("我爱北京", "我爱上海") == approx(100 * (1 / 2 * 1 / 3 * 1 / 4 * 1 / 4) ** 0.25)


def test_chinese_rouge_is_on_jieba_words():
    assert segment("我爱北京") == "我 爱 北京"
    assert segment("我爱上海") == "我 爱 上海"
    scores = score_pair("我爱北京", "我爱上海")  # words 我 爱 shared of 3 each; bigram 我爱 of 2 each
    assert (scores["rouge-1"], scores["rouge-2"], scores["rouge-l"]) == (
        approx(200 / 3),
        approx(50.0),
        approx(200 / 3),
    )


def test_corpus_score_is_the_mean_over_samples():
    means, per_sample = score_predictions(
        ["the cat sat", "", "same text here"], ["the cat ran", "x", "same text here"]
    )
    assert [s["rouge-1"] for s in per_sample] == [approx(200 / 3), 0.0, approx(100.0)]
    assert means["rouge-1"] == approx((200 / 3 + 0 + 100) / 3)
    assert math.isclose(means["bleu-4"], sum(s["bleu-4"] for s in per_sample) / 3)
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        score_predictions(["a", "b"], ["a"])
