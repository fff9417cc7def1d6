"""PPO maths by hand: GAE (vectorised == reverse loop), whitening, KL estimators and penalised rewards, the
adaptive KL controller, clipped policy and value losses, entropy, explained variance."""
import math

import pytest
import torch

from rlhfkit.losses.advantages import gae, gae_loop, whiten
from rlhfkit.losses.kl import KLController, kl_k1, kl_k3, kl_penalized_rewards
from rlhfkit.losses.ppo import entropy_from_logits, explained_variance, policy_loss, value_loss


def test_gae_by_hand():
    # gamma 1, lam 0.95; rewards [0, 0, 1], values 0.5 everywhere; V after the end = 0
    # delta = [0 + .5 - .5, 0 + .5 - .5, 1 + 0 - .5] = [0, 0, .5]
    # A2 = .5, A1 = .95 * .5 = .475, A0 = .95 * .475 = .45125; returns = A + V
    adv, ret = gae(torch.tensor([[0.0, 0.0, 1.0]]), torch.full((1, 3), 0.5), torch.ones(1, 3, dtype=torch.bool),
                   gamma=1.0, lam=0.95)
    torch.testing.assert_close(adv, torch.tensor([[0.45125, 0.475, 0.5]]))
    torch.testing.assert_close(ret, torch.tensor([[0.95125, 0.975, 1.0]]))


def test_gae_respects_the_end_of_each_sequence():
    # row 2 ends after 2 tokens: its third value and reward are padding and must not leak in
    r = torch.tensor([[0.0, 0.0, 1.0], [0.0, 2.0, 99.0]])
    v = torch.tensor([[0.5, 0.5, 0.5], [1.0, 1.0, 99.0]])
    m = torch.tensor([[True, True, True], [True, True, False]])
    adv, _ = gae(r, v, m, gamma=0.9, lam=0.5)
    # row 2: delta1 = 2 + 0 - 1 = 1; delta0 = 0 + .9 * 1 - 1 = -.1; A0 = -.1 + .45 * 1 = .35
    torch.testing.assert_close(adv[1], torch.tensor([0.35, 1.0, 0.0]))


@pytest.mark.parametrize("gamma,lam", [(1.0, 0.95), (0.99, 0.9), (0.5, 0.0), (1.0, 1.0)])
def test_vectorised_gae_equals_the_reverse_loop(gamma, lam):
    g = torch.Generator().manual_seed(0)
    B, T = 6, 17
    r, v = torch.randn(B, T, generator=g, dtype=torch.float64), torch.randn(B, T, generator=g, dtype=torch.float64)
    lengths = torch.tensor([17, 1, 5, 16, 9, 3])
    m = torch.arange(T)[None] < lengths[:, None]
    a1, r1 = gae(r, v, m, gamma, lam)
    a2, r2 = gae_loop(r, v, m, gamma, lam)
    torch.testing.assert_close(a1, a2)
    torch.testing.assert_close(r1, r2)


def test_whiten_by_hand():
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0, 100.0]])
    m = torch.tensor([[True, True, True, True, False]])
    # mean 2.5, unbiased var 5/3
    want = (torch.tensor([1.0, 2.0, 3.0, 4.0]) - 2.5) / math.sqrt(5 / 3 + 1e-8)
    out = whiten(x, m)
    torch.testing.assert_close(out[0, :4], want)
    assert out[0, 4] == 0
    torch.testing.assert_close(whiten(x, m, shift_mean=False)[0, :4], want + 2.5)


def test_kl_estimators_by_hand():
    logp, ref = torch.log(torch.tensor([0.5])), torch.log(torch.tensor([0.25]))
    torch.testing.assert_close(kl_k1(logp, ref), torch.tensor([math.log(2)]))
    # k3 = (r - 1) - log r, r = 0.25 / 0.5 = 0.5: -0.5 + log 2 = 0.19315
    torch.testing.assert_close(kl_k3(logp, ref), torch.tensor([-0.5 + math.log(2)]))
    assert kl_k3(ref, logp).item() >= 0 and kl_k3(logp, logp).item() == 0


def test_kl_penalised_rewards_put_the_score_on_the_last_real_token():
    kl = torch.tensor([[0.1, 0.2, 0.3], [0.4, 7.0, 7.0]])
    m = torch.tensor([[True, True, True], [True, False, False]])
    rewards, non_score = kl_penalized_rewards(torch.tensor([1.0, 2.0]), kl, m, kl_coef=0.5)
    torch.testing.assert_close(rewards, torch.tensor([[-0.05, -0.1, -0.15 + 1.0], [-0.2 + 2.0, 0.0, 0.0]]))
    torch.testing.assert_close(non_score, torch.tensor([[-0.05, -0.1, -0.15], [-0.2, 0.0, 0.0]]))


def test_adaptive_kl_controller_by_hand():
    c = KLController(0.1, target=6.0, horizon=10000)
    # error = clip(12 / 6 - 1, -.2, .2) = .2; coef *= 1 + .2 * 256 / 10000
    assert c.update(12.0, 256) == pytest.approx(0.1 * (1 + 0.2 * 256 / 10000))
    before = c.value
    # error = clip(3 / 6 - 1) = -.2 (clipped from -.5)
    assert c.update(3.0, 256) == pytest.approx(before * (1 - 0.2 * 256 / 10000))
    fixed = KLController(0.05)
    assert fixed.update(100.0, 256) == 0.05
    c2 = KLController(1.0)
    c2.load_state_dict(c.state_dict())
    assert c2.value == c.value and c2.target == 6.0


def test_clipped_policy_loss_by_hand():
    old = torch.zeros(4)
    logp = torch.log(torch.tensor([1.5, 1.5, 0.5, 0.5]))
    adv = torch.tensor([1.0, -1.0, 1.0, -1.0])
    loss, clipped, approx_kl = policy_loss(logp, old, adv, cliprange=0.2)
    # ratio 1.5, A=+1: max(-1.5, -1.2) = -1.2 (clipped);  ratio 1.5, A=-1: max(1.5, 1.2) = 1.5
    # ratio 0.5, A=+1: max(-0.5, -0.8) = -0.5;           ratio 0.5, A=-1: max(0.5, 0.8) = 0.8 (clipped)
    torch.testing.assert_close(loss, torch.tensor([-1.2, 1.5, -0.5, 0.8]))
    assert clipped.tolist() == [1.0, 0.0, 0.0, 1.0]
    torch.testing.assert_close(approx_kl, 0.5 * logp ** 2)


def test_clipped_value_loss_by_hand():
    v = torch.tensor([2.0, 0.5, 0.5])
    old = torch.ones(3)
    ret = torch.tensor([0.0, 2.0, 0.0])
    loss, clipped = value_loss(v, old, ret, cliprange_value=0.2)
    # v=2: clip 1.2 -> max(4, 1.44) / 2 = 2;  v=.5, R=2: clip .8 -> max(2.25, 1.44) / 2 = 1.125
    # v=.5, R=0: clip .8 -> max(.25, .64) / 2 = .32 (clipped)
    torch.testing.assert_close(loss, torch.tensor([2.0, 1.125, 0.32]))
    assert clipped.tolist() == [0.0, 0.0, 1.0]


def test_entropy_and_explained_variance():
    torch.testing.assert_close(entropy_from_logits(torch.zeros(2, 4)), torch.full((2,), math.log(4)))
    peaked = entropy_from_logits(torch.tensor([[100.0, 0.0, 0.0]]))
    assert peaked.item() == pytest.approx(0.0, abs=1e-6)
    m = torch.ones(1, 4, dtype=torch.bool)
    ret = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    assert explained_variance(ret, ret, m) == pytest.approx(1.0)
    assert explained_variance(torch.full((1, 4), 2.5), ret, m) == pytest.approx(0.0)

