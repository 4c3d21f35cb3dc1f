"""The schemes' update math (toolkit.schemes.updates): each rule against its formula, the same
numbers on numpy and torch, and the identities between rules.

Sources: PyTorch's SGD (heavy ball m <- mu m + d, step -lr m; Nesterov -lr (d + mu m)); Zhang,
Gupta, Lian, Liu, IJCAI 2016, Sec. 4.3 (lr / staleness); Zhang, Choromanska, LeCun, NIPS 2015,
Eqs. (5)-(6) and Algorithms 1-2 (elastic exchange, EAMSGD); Douillard et al. 2023, Algorithm 1
(DiLoCo's outer Nesterov step).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as hs
from hypothesis.extra.numpy import arrays

from toolkit.checks import ConfigError
from toolkit.schemes import EASGD, DiLoCo, LocalSGD, Replicated, Shared, Staleness, Sync
from toolkit.schemes.updates import Step, average, elastic, local_nesterov, outer, sgd

RNG = np.random.default_rng(3)


def test_staleness_policies():
    s = np.array([0, 1, 3, 6])
    keep, f = Staleness("lr").factors(s)
    assert keep.all() and f.tolist() == [1.0, 1.0, 1 / 3, 1 / 6]
    keep, f = Staleness("drop", 3).factors(s)
    assert keep.tolist() == [True, True, True, False] and (f == 1).all()
    with pytest.raises(ValueError, match="max_staleness"):
        Staleness("drop")
    with pytest.raises(ValueError, match="staleness"):
        Staleness("bogus")
    for policy in ("none", "lr"):  # a bound only "drop" reads is refused, not ignored
        with pytest.raises(ConfigError, match=r"^max_staleness: only staleness='drop'") as err:
            Staleness(policy, 3)
        assert err.value.field == "max_staleness"
    # weights: the mean over the kept gradients of each update, times the factor
    upd, st = np.array([0, 0, 1, 1, 1, 3]), np.array([0, 2, 1, 5, 0, 4])
    keep, w, count = Staleness("drop", 2).weights(upd, st)
    assert count.tolist() == [2, 2, 0, 0]
    np.testing.assert_allclose(w, [0.5, 0.5, 0.5, 0.0, 0.5, 0.0])
    keep, w, count = Staleness("lr").weights(upd, st, n_updates=5)
    assert count.tolist() == [2, 3, 0, 1, 0]
    np.testing.assert_allclose(w, [1 / 2, 1 / 4, 1 / 3, 1 / 15, 1 / 3, 1 / 4])


def test_sgd_momentum_and_nesterov_follow_pytorch():
    ds = RNG.normal(size=(5, 3))
    for nesterov in (False, True):
        p = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
        opt = torch.optim.SGD([p], lr=0.1, momentum=0.9, nesterov=nesterov)
        rule = sgd(0.1, 0.9, nesterov=nesterov)
        x, state = np.zeros(3), rule.init(np.zeros(3))
        for d in ds:
            p.grad = torch.as_tensor(d)
            opt.step()
            step, state = rule.update(d, state)
            x = step.apply(x)
        np.testing.assert_allclose(x, p.detach().numpy(), rtol=1e-14, atol=1e-15)
    step, state = sgd(0.5).update(ds[0], None)
    np.testing.assert_array_equal(step.apply(np.zeros(3)), -0.5 * ds[0])


def _values(moved, xs):
    """The new replicas of an exchange: its values, or its Step applied to xs."""
    return moved.apply(xs) if isinstance(moved, Step) else moved


@pytest.mark.parametrize(
    "exchange",
    [elastic(0.2), average(), outer(sgd(0.7, 0.9, nesterov=True))],
    ids=lambda e: e.kind,  # the same on every xdist worker (str shows addresses)
)
def test_exchange_gives_the_same_numbers_on_numpy_and_torch(exchange):
    xs, c = RNG.normal(size=(4, 6)), RNG.normal(size=6)
    state_np, state_t = exchange.init(c), exchange.init(torch.as_tensor(c))
    for _ in range(3):
        a = exchange.apply(xs, c, state_np)
        b = exchange.apply(torch.as_tensor(xs), torch.as_tensor(c), state_t)
        a = (_values(a[0], xs), *a[1:])
        b = (_values(b[0], torch.as_tensor(xs)), *b[1:])
        for u, v in zip(a[:3], b[:3], strict=True):
            np.testing.assert_allclose(u, v.numpy(), rtol=1e-15, atol=1e-15)
        xs, _, c, state_np = a
        state_t = b[3]


@pytest.mark.parametrize(
    "exchange",
    [elastic(0.2), average(), outer(sgd(0.7, 0.9, nesterov=True))],
    ids=lambda e: e.kind,  # the same on every xdist worker (str shows addresses)
)
def test_reduced_exchange_is_the_stacked_one_seen_by_each_replica(exchange):
    """What one replica computes from its own x and the all-reduced mean (the real backend's
    synchronous exchange) equals its row of the stacked exchange, rounds after rounds."""
    xs, c = RNG.normal(size=(4, 6)), RNG.normal(size=6)
    state = exchange.init(c)
    mine = [(x.copy(), exchange.init(c), c.copy()) for x in xs]
    for _ in range(3):
        moved, pts, c_new, state = exchange.apply(xs, c, state)
        new = _values(moved, xs)
        mean = xs.mean(0)
        for i, (x, st_i, c_i) in enumerate(mine):
            x2, p2, c2, st2 = exchange.reduced(x, mean, len(xs), c_i, st_i)
            np.testing.assert_allclose(x2, new[i], rtol=1e-13, atol=1e-13)
            np.testing.assert_allclose(p2, pts[i], rtol=1e-13, atol=1e-13)
            np.testing.assert_allclose(c2, c_new, rtol=1e-13, atol=1e-13)
            mine[i] = (x2 + 1e-3 * i, st2, c2)  # replicas drift apart between rounds
        xs = np.stack([m[0] for m in mine])
        c = c_new


def test_elastic_exchange_is_the_papers():
    """x_i <- x_i - alpha (x_i - c), c <- c + alpha sum_i (x_i - c) from the old values; the next
    gradient is taken at the old x_i (Algorithm 1)."""
    xs, c = RNG.normal(size=(3, 4)), RNG.normal(size=4)
    new, pts, centre, _ = elastic(0.3).apply(xs, c, None)
    np.testing.assert_allclose(new.apply(xs), xs - 0.3 * (xs - c))
    np.testing.assert_allclose(centre, c + 0.3 * (xs - c).sum(0))
    assert pts is xs


def test_eamsgd_local_step_is_algorithm_2():
    p, v, g = RNG.normal(size=(3, 4))
    rule = local_nesterov(0.1, 0.6)
    np.testing.assert_allclose(rule.point(p, v), p + 0.6 * v)
    step, v_new = rule.update(g, v)
    np.testing.assert_allclose(v_new, 0.6 * v - 0.1 * g)
    np.testing.assert_allclose(step.apply(p), p + v_new)


def test_schemes_hand_out_their_rules():
    assert isinstance(Sync(4).updates(0.1), Shared)
    easgd = EASGD(4, 2, 0.1, momentum=0.5).updates(0.2)
    assert isinstance(easgd, Replicated)
    assert easgd.exchange.kind == "elastic" and easgd.exchange.alpha == 0.1
    assert easgd.local.momentum == 0.5
    assert LocalSGD(4, 2).updates(0.1).exchange.kind == "average"
    assert DiLoCo(4, 2).updates(0.1).exchange.kind == "outer"
    with pytest.raises(ValueError, match="momentum"):
        LocalSGD(4, 2).updates(0.1, momentum=0.9)
    with pytest.raises(ValueError, match="staleness"):
        EASGD(4, 2, 0.1).updates(0.1, staleness=Staleness("lr"))


finite = hs.floats(-1e3, 1e3, allow_nan=False)


@settings(max_examples=40, deadline=None)
@given(
    xs=arrays(np.float64, hs.tuples(hs.integers(1, 6), hs.integers(1, 5)), elements=finite),
    alpha=hs.floats(0.01, 0.99),
)
def test_elastic_exchange_conserves_the_total(xs, alpha):
    """sum_i x_i + c is unchanged by an elastic exchange (what the workers give, the centre
    takes), for any replicas and alpha."""
    c = xs.mean(0)[::-1].copy() if xs.shape[1] > 1 else xs.mean(0)
    moved, _, centre, _ = elastic(alpha).apply(xs, c, None)
    new = moved.apply(xs)
    scale = 1.0 + np.abs(xs).sum(0) + np.abs(c)
    np.testing.assert_allclose(new.sum(0) + centre, xs.sum(0) + c, atol=1e-12 * scale.max())


@settings(max_examples=40, deadline=None)
@given(xs=arrays(np.float64, hs.tuples(hs.integers(1, 6), hs.integers(1, 5)), elements=finite))
def test_outer_sgd_rate_one_is_averaging(xs):
    """DiLoCo's outer step with plain SGD of rate 1 moves the centre to the replicas' mean."""
    c = np.zeros(xs.shape[1])
    a = average().apply(xs, c, None)
    b = outer(sgd(1.0)).apply(xs, c, None)
    assert not isinstance(a[0], Step) and not isinstance(b[0], Step)
    for u, v in zip(a[:3], b[:3], strict=True):
        np.testing.assert_allclose(u, v, atol=1e-9 * (1 + np.abs(xs).max()))
