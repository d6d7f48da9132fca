"""RLHF math on hand-built tensors; expected values computed here from the formulas with `math`."""

import math

import pytest
import torch

from common import rlhf


def _logsig(x: float) -> float:
    return math.log(1.0 / (1.0 + math.exp(-x)))


def test_pairwise_reward_loss_by_hand():
    chosen = torch.tensor([2.0, 0.5, -1.0])
    rejected = torch.tensor([1.0, 1.5, -1.0])
    expected = -(_logsig(1.0) + _logsig(-1.0) + _logsig(0.0)) / 3
    assert rlhf.pairwise_reward_loss(chosen, rejected).item() == pytest.approx(expected, rel=1e-6)
    # equal rewards cost log 2
    assert rlhf.pairwise_reward_loss(torch.zeros(4), torch.zeros(4)).item() == pytest.approx(math.log(2))


@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo", "hinge"])
def test_dpo_loss_by_hand(loss_type):
    beta = 0.1
    pc, pr, rc, rr = -10.0, -14.0, -11.0, -12.0
    h = (pc - rc) - (pr - rr)  # (1) - (-2) = 3
    expected = {
        "sigmoid": -_logsig(beta * h),
        "ipo": (h - 1 / (2 * beta)) ** 2,
        "hinge": max(0.0, 1 - beta * h),
    }[loss_type]
    got = rlhf.dpo_loss(*(torch.tensor([v]) for v in (pc, pr, rc, rr)), beta=beta, loss_type=loss_type)
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_dpo_loss_rejects_unknown_type():
    t = torch.zeros(1)
    with pytest.raises(ValueError, match="sigmoid"):
        rlhf.dpo_loss(t, t, t, t, beta=0.1, loss_type="kto")


def test_gae_by_hand_with_padding():
    gamma, lam = 0.9, 0.8
    rewards = torch.tensor([[0.1, -0.2, 1.0], [0.5, 2.0, 7.0]])
    values = torch.tensor([[0.3, 0.4, 0.5], [0.2, 0.6, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])

    def gae(r, v):
        adv, nxt_v, nxt_a = [0.0] * len(r), 0.0, 0.0
        for t in reversed(range(len(r))):
            d = r[t] + gamma * nxt_v - v[t]
            adv[t] = d + gamma * lam * nxt_a
            nxt_v, nxt_a = v[t], adv[t]
        return adv

    exp0 = gae([0.1, -0.2, 1.0], [0.3, 0.4, 0.5])
    exp1 = gae([0.5, 2.0], [0.2, 0.6]) + [0.0]  # the padded step is ignored
    adv, ret = rlhf.compute_gae(rewards, values, mask, gamma, lam)
    assert adv.tolist()[0] == pytest.approx(exp0, rel=1e-6)
    assert adv.tolist()[1] == pytest.approx(exp1, rel=1e-6)
    assert ret[0].tolist() == pytest.approx(
        [a + v for a, v in zip(exp0, [0.3, 0.4, 0.5], strict=True)], rel=1e-6
    )
    # last step of row 0 by hand: delta = 1.0 - 0.5
    assert adv[0, 2].item() == pytest.approx(0.5)


def test_token_rewards_kl_and_score_at_last_token():
    logp = torch.tensor([[-1.0, -2.0, -3.0]])
    ref = torch.tensor([[-1.5, -2.0, -1.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    r = rlhf.token_rewards(torch.tensor([4.0]), logp, ref, mask, kl_coef=0.1)
    assert r.tolist()[0] == pytest.approx([-0.05, 0.0 + 4.0, 0.0])


def test_ppo_policy_loss_clips_by_hand():
    eps = 0.2
    old = torch.zeros(1, 3)
    # ratios e^0.5 (clipped for A>0), e^-0.5 (clipped for A<0), 1
    new = torch.tensor([[0.5, -0.5, 0.0]])
    adv = torch.tensor([[1.0, -1.0, 2.0]])
    mask = torch.ones(1, 3)
    r0, r1 = math.exp(0.5), math.exp(-0.5)
    terms = [max(-1 * r0, -1 * min(r0, 1 + eps)), max(1 * r1, 1 * max(r1, 1 - eps)), -2.0]
    loss, clip_frac = rlhf.ppo_policy_loss(new, old, adv, mask, eps)
    assert loss.item() == pytest.approx(sum(terms) / 3, rel=1e-6)
    assert clip_frac.item() == pytest.approx(2 / 3)
    # masking the clipped positions leaves only the unclipped one
    loss_m, frac_m = rlhf.ppo_policy_loss(new, old, adv, torch.tensor([[0.0, 0.0, 1.0]]), eps)
    assert loss_m.item() == pytest.approx(-2.0) and frac_m.item() == 0.0


def test_value_loss_clipped_by_hand():
    old = torch.tensor([[0.0, 0.0]])
    new = torch.tensor([[1.0, 0.1]])
    ret = torch.tensor([[2.0, 0.0]])
    # pos 0: unclipped (1-2)^2=1, clipped (0.2-2)^2=3.24 -> 3.24; pos 1: 0.01 both
    loss, frac = rlhf.value_loss(new, old, ret, torch.ones(1, 2), clip_range=0.2)
    assert loss.item() == pytest.approx(0.5 * (3.24 + 0.01) / 2, rel=1e-6)
    assert frac.item() == pytest.approx(0.5)


def test_whiten_masked_and_kl():
    x = torch.tensor([[1.0, 3.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    w = rlhf.whiten(x, mask)
    assert w.tolist()[0] == pytest.approx([-1.0, 1.0, 0.0], abs=1e-4)  # mean 2, std 1
    w_keep = rlhf.whiten(x, mask, shift_mean=False)
    assert w_keep.tolist()[0] == pytest.approx([1.0, 3.0, 0.0], abs=1e-4)
    kl = rlhf.kl_per_token(torch.tensor([-1.0, -2.0]), torch.tensor([-1.5, -1.0]))
    assert kl.tolist() == pytest.approx([0.5, -1.0])


def test_entropy_uniform_is_log_vocab():
    assert rlhf.entropy_from_logits(torch.zeros(2, 8)).tolist() == pytest.approx([math.log(8)] * 2)


def test_orpo_loss_by_hand():
    lam = 0.5
    chosen, rejected = -0.4, -1.3  # length-averaged log-probabilities
    log_odds = (chosen - math.log(1 - math.exp(chosen))) - (rejected - math.log(1 - math.exp(rejected)))
    expected = -chosen - lam * _logsig(log_odds)
    got = rlhf.orpo_loss(torch.tensor([chosen]), torch.tensor([rejected]), lam)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    # log(1 - e^x) stays finite where the naive form loses it: a near-certain answer (x -> 0-) and a hopeless one
    tiny = torch.tensor([-1e-9, -50.0])
    assert rlhf.log1mexp(tiny).tolist() == pytest.approx([math.log(1e-9), -math.exp(-50.0)], rel=1e-6)


def test_simpo_loss_by_hand():
    beta, gamma = 2.0, 0.5
    chosen, rejected = torch.tensor([-0.9, -2.0]), torch.tensor([-1.2, -1.0])
    expected = [-_logsig(beta * (-0.9 + 1.2) - gamma), -_logsig(beta * (-2.0 + 1.0) - gamma)]
    assert rlhf.simpo_loss(chosen, rejected, beta, gamma).tolist() == pytest.approx(expected, rel=1e-6)


def test_kto_loss_by_hand():
    beta, kl = 0.1, 0.3
    policy = torch.tensor([-10.0, -10.0, -20.0])
    ref = torch.tensor([-12.0, -9.0, -19.0])  # log-ratios 2, -1, -1
    desirable = torch.tensor([True, True, False])
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    expected = [
        1.0 * (1 - sig(beta * (2 - kl))),
        1.0 * (1 - sig(beta * (-1 - kl))),
        2.0 * (1 - sig(beta * (kl + 1))),
    ]
    got = rlhf.kto_loss(policy, ref, desirable, kl, beta, desirable_weight=1.0, undesirable_weight=2.0)
    assert got.tolist() == pytest.approx(expected, rel=1e-6)
    # a negative batch KL estimate counts as 0
    assert rlhf.kto_loss(policy, ref, desirable, -5.0, beta).tolist() == pytest.approx(
        rlhf.kto_loss(policy, ref, desirable, 0.0, beta).tolist()
    )


def test_group_advantages_by_hand():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.5, 0.5, 0.5, 0.5, 3.0, 1.0, 2.0, 2.0])
    # group 1: mean 0.5, sample std sqrt(1/3); group 2: all equal -> 0; group 3: mean 2, std sqrt(2/3)
    s1, s3 = math.sqrt(1 / 3), math.sqrt(2 / 3)
    expected = [0.5 / (s1 + 1e-4), -0.5 / (s1 + 1e-4), -0.5 / (s1 + 1e-4), 0.5 / (s1 + 1e-4), 0.0, 0.0, 0.0, 0.0,
                1 / (s3 + 1e-4), -1 / (s3 + 1e-4), 0.0, 0.0]  # fmt: skip
    assert rlhf.group_advantages(rewards, 4).tolist() == pytest.approx(expected, rel=1e-6, abs=1e-7)
    assert rlhf.group_advantages(rewards, 4, "none").tolist() == pytest.approx(
        [0.5, -0.5, -0.5, 0.5, 0, 0, 0, 0, 1, -1, 0, 0], abs=1e-7
    )
    batch_std = rewards.std().item()
    assert rlhf.group_advantages(rewards, 4, "batch")[8].item() == pytest.approx(
        1 / (batch_std + 1e-4), rel=1e-6
    )
