"""Replay equals independent reference implementations of each scheme's update rule.

Oracles: a single-process PyTorch SGD loop on the same per-worker batches (Sync = large-batch
SGD; Async(1) = serial SGD), a naive one-gradient-at-a-time loop over the Schedule (the
definition of the shared-parameter update, no batching), the closed-form recursion of SGD with a
planted delay on a quadratic, and direct NumPy implementations of EASGD / EAMSGD (Zhang,
Choromanska, LeCun, NIPS 2015, arXiv 1412.6651: synchronous update eq. (5)-(6) and Algorithms
1-2), local SGD and DiLoCo (Douillard et al. 2023, arXiv 2311.08105, Algorithm 1) on the
quadratic. Models are float64 so agreement is to ~1e-10 rather than float32 rounding.
"""

from __future__ import annotations

import importlib

import numpy as np
import pandas as pd
import pytest
import scipy.stats as st
import torch
import torch.nn.functional as F
from torch import nn

from toolkit.cluster.clock import simulate
from toolkit.cluster.schedule import Schedule
from toolkit.replay import DataStream, Memory, Runtime, train
from toolkit.schemes import (
    EASGD,
    Async,
    Backup,
    Delayed,
    DiLoCo,
    KAsync,
    KBatchAsync,
    KBatchSync,
    LocalSGD,
    Sync,
)
from toolkit.workloads import Workload, get_workload, seeded_model

CPU = Runtime(device="cpu")

DIST = st.expon(loc=1.0, scale=0.5)
B = 8


def mlp_workload(n_train: int = 512) -> Workload:
    """A small float64 tanh MLP regression: nonlinear, so versions matter."""
    g = torch.Generator().manual_seed(123)
    x = torch.randn(n_train + 64, 5, generator=g, dtype=torch.float64)
    y = torch.sin(x.sum(1, keepdim=True))

    def make_model(seed: int) -> nn.Module:
        return seeded_model(
            seed, lambda: nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 1)).double()
        )

    return Workload(
        "mlp64",
        make_model,
        x[:n_train],
        y[:n_train],
        x[n_train:],
        y[n_train:],
        loss=F.mse_loss,
        batch_size=B,
        lr=0.1,
        accuracy=False,
    )


def quad(noise: float = 1.0, d: int = 4) -> Workload:
    return get_workload(
        "quadratic",
        d=d,
        eigenvalues=np.linspace(0.5, 2.0, d),
        noise_std=noise,
        n_train=1024,
        batch_size=B,
        dtype=torch.float64,
    )


def flat(model: nn.Module) -> torch.Tensor:
    return nn.utils.parameters_to_vector(model.parameters()).detach().clone()


def reference_shared(
    schedule: Schedule,
    wl: Workload,
    lr: float,
    seed: int,
    machines: int,
    factor=None,
    momentum: float = 0.0,
):
    """The definition, one gradient at a time: x_{u+1} = x_u - lr mean_i f_i g_i(x_{v_i})."""
    stream = DataStream(wl.n_train, machines, B, seed)
    model = wl.make_model(seed)
    versions = [flat(model)]
    used = schedule.used
    n_upd = int(used["update"].max()) + 1
    losses, mom = [], torch.zeros_like(versions[0])
    for u in range(n_upd):
        rows = used[used["update"] == u]
        d = torch.zeros_like(versions[0])
        ls = []
        for r in rows.itertuples():
            nn.utils.vector_to_parameters(versions[r.version], model.parameters())
            model.zero_grad()
            idx = stream.indices(r.worker, r.batch)
            loss = wl.loss(model(wl.x_train[idx]), wl.y_train[idx])
            loss.backward()
            f = 1.0 if factor is None else factor(u - r.version)
            d += f * torch.cat([p.grad.flatten() for p in model.parameters()]) / len(rows)
            ls.append(float(loss.detach()))
        mom = momentum * mom + d
        versions.append(versions[-1] - lr * (mom if momentum else d))
        losses.append(np.mean(ls))
    return versions, np.array(losses)


def assert_matches(res, versions, losses, rtol=1e-9):
    assert res.status == "ok"
    np.testing.assert_allclose(res.frame["train_loss"].to_numpy(), losses, rtol=rtol, atol=1e-12)
    torch.testing.assert_close(res.params, versions[-1], rtol=rtol, atol=1e-12)


def test_sync_equals_single_process_large_batch_sgd():
    """Sync(n) with batch B per worker == plain SGD with batch n*B on the concatenated batches."""
    wl, n, lr, seed, U = mlp_workload(), 4, 0.2, 3, 25
    res = train(simulate(Sync(n), DIST, updates=U, seed=1), wl, lr=lr, seed=seed, runtime=CPU)
    stream = DataStream(wl.n_train, n, B, seed)
    model = wl.make_model(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    losses = []
    for u in range(U):
        idx = torch.cat([stream.indices(w, u) for w in range(n)])
        opt.zero_grad()
        loss = wl.loss(model(wl.x_train[idx]), wl.y_train[idx])
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert_matches(res, [flat(model)], np.array(losses))
    # the evaluation points hold the test loss of the current parameters
    last = res.frame.iloc[-1]
    with torch.no_grad():
        assert last["test_loss"] == pytest.approx(float(wl.loss(model(wl.x_test), wl.y_test)))


def test_sync_momentum_equals_torch_sgd_momentum():
    wl, n, lr, seed, U = mlp_workload(), 2, 0.1, 0, 15
    res = train(
        simulate(Sync(n), DIST, updates=U, seed=0), wl, lr=lr, momentum=0.9, seed=seed, runtime=CPU
    )
    stream = DataStream(wl.n_train, n, B, seed)
    model = wl.make_model(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    for u in range(U):
        idx = torch.cat([stream.indices(w, u) for w in range(n)])
        opt.zero_grad()
        wl.loss(model(wl.x_train[idx]), wl.y_train[idx]).backward()
        opt.step()
    torch.testing.assert_close(res.params, flat(model), rtol=1e-9, atol=1e-12)
    assert res.manifest["momentum"] == 0.9


def test_async1_equals_serial_sgd():
    wl, lr, seed, U = mlp_workload(), 0.1, 5, 30
    res = train(simulate(Async(1), DIST, updates=U, seed=2), wl, lr=lr, seed=seed, runtime=CPU)
    stream = DataStream(wl.n_train, 1, B, seed)
    model = wl.make_model(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    for u in range(U):
        idx = stream.indices(0, u)
        opt.zero_grad()
        wl.loss(model(wl.x_train[idx]), wl.y_train[idx]).backward()
        opt.step()
    torch.testing.assert_close(res.params, flat(model), rtol=1e-9, atol=1e-12)
    assert (res.frame["staleness"] == 0).all()


@pytest.mark.parametrize("other", [Backup(3, 0), Delayed(3, 0)])
def test_identities_with_sync(other):
    """Backup(n, 0) == Sync(n) and Delayed(n, 0) == Sync(n): same Results, same parameters."""
    wl = mlp_workload()
    a = train(simulate(Sync(3), DIST, updates=12, seed=4), wl, lr=0.1, seed=1, eval_every=3)
    b = train(simulate(other, DIST, updates=12, seed=4), wl, lr=0.1, seed=1, eval_every=3)
    cols = ["update", "train_loss", "staleness", "test_loss"]
    pd.testing.assert_frame_equal(a.frame[cols], b.frame[cols])
    torch.testing.assert_close(a.params, b.params, rtol=0, atol=0)


@pytest.mark.parametrize(
    "scheme",
    [Backup(3, 2), Async(6), KAsync(6, 3), KBatchAsync(6, 3), KBatchSync(3, 5), Delayed(3, 2)],
    ids=lambda s: type(s).__name__,
)
def test_batched_replay_equals_naive_definition(scheme):
    """Waves, grouped batches and vmapped stale versions == one gradient at a time."""
    wl, lr, seed = mlp_workload(), 0.15, 2
    sched = simulate(scheme, DIST, updates=30, seed=3)
    res = train(sched, wl, lr=lr, seed=seed, runtime=CPU)
    versions, losses = reference_shared(sched, wl, lr, seed, scheme.rule.machines)
    assert_matches(res, versions, losses)
    used = sched.used
    np.testing.assert_allclose(
        res.frame["staleness"], used.groupby("update")["staleness"].mean().to_numpy()
    )
    # the wave size does not change the numbers
    one = train(sched, wl, lr=lr, seed=seed, runtime=CPU, memory=Memory(max_wave=1))
    torch.testing.assert_close(one.params, res.params, rtol=1e-10, atol=1e-12)
    # nor does splitting a wave's vmapped call into chunks of at most 2 batches
    chunked = train(sched, wl, lr=lr, seed=seed, runtime=CPU, memory=Memory(max_samples=2 * B))
    torch.testing.assert_close(chunked.params, res.params, rtol=1e-10, atol=1e-12)


def test_staleness_options_follow_their_definitions():
    """'lr': lr / max(1, staleness) per gradient (Zhang et al., IJCAI 2016); 'drop': gradients
    staler than the bound are left out of the mean (an update left empty is a no-op)."""
    wl, lr, seed = mlp_workload(), 0.15, 1
    sched = simulate(KBatchAsync(6, 2), DIST, updates=30, seed=5)
    res = train(sched, wl, lr=lr, seed=seed, staleness="lr")
    versions, _ = reference_shared(sched, wl, lr, seed, 6, factor=lambda s: 1.0 / max(1, s))
    torch.testing.assert_close(res.params, versions[-1], rtol=1e-9, atol=1e-12)
    assert res.manifest["staleness"] == "lr"

    bound = 2
    frame = sched.frame.copy()
    frame["used"] = frame["used"] & (frame["staleness"] <= bound)
    dropped = Schedule(frame, meta=sched.meta)
    assert (~frame["used"]).any(), "the test needs some gradients beyond the bound"
    # reference: the mean over kept gradients; updates with none kept leave x unchanged
    stream = DataStream(wl.n_train, 6, B, seed)
    model = wl.make_model(seed)
    versions = [flat(model)]
    for u in range(30):
        rows = dropped.used[dropped.used["update"] == u]
        d = torch.zeros_like(versions[0])
        for r in rows.itertuples():
            nn.utils.vector_to_parameters(versions[r.version], model.parameters())
            model.zero_grad()
            idx = stream.indices(r.worker, r.batch)
            wl.loss(model(wl.x_train[idx]), wl.y_train[idx]).backward()
            d += torch.cat([p.grad.flatten() for p in model.parameters()]) / len(rows)
        versions.append(versions[-1] - lr * d)
    res = train(sched, wl, lr=lr, seed=seed, staleness="drop", max_staleness=bound)
    torch.testing.assert_close(res.params, versions[-1], rtol=1e-9, atol=1e-12)
    assert res.manifest["max_staleness"] == bound


def planted_schedule(U: int, tau: int) -> Schedule:
    """One worker; update t uses batch t computed at version max(0, t - tau)."""
    t = np.arange(U)
    v = np.maximum(t - tau, 0)
    frame = pd.DataFrame(
        {
            "kind": "grad",
            "update": t,
            "time": t + 1.0,
            "worker": 0,
            "version": v,
            "staleness": t - v,
            "used": True,
            "batch": t,
            "compute_time": 1.0,
            "comm_time": 0.0,
        }
    )
    return Schedule(frame)


@pytest.mark.parametrize("tau", [0, 1, 4])
def test_planted_staleness_matches_closed_form_recursion(tau):
    """x_{t+1} = x_t - eta (H (x_{t-tau} - x*) - xi_t), xi_t the mean noise of batch t."""
    wl, eta, seed, U = quad(), 0.3, 0, 40
    res = train(planted_schedule(U, tau), wl, lr=eta, seed=seed, eval_every=1)
    h = wl.info["hessian_eigenvalues"]
    stream = DataStream(wl.n_train, 1, B, seed)
    xs = [flat(wl.make_model(seed)).numpy()]
    for t in range(U):
        xi = wl.x_train[stream.indices(0, t)].numpy().mean(0)
        xs.append(xs[t] - eta * (h * xs[max(0, t - tau)] - xi))
    np.testing.assert_allclose(res.params.numpy(), xs[-1], rtol=1e-10, atol=1e-12)
    # test loss is f(x) = 1/2 sum h x^2 at every update
    f = np.array([0.5 * np.sum(h * x * x) for x in xs[1:]])
    np.testing.assert_allclose(res.frame["test_loss"], f, rtol=1e-10)
    assert res.frame["staleness"].tolist() == [min(t, tau) for t in range(U)]


def grad_quad(wl, x, stream, w, j):
    xi = wl.x_train[stream.indices(w, j)].numpy().mean(0)
    return wl.info["hessian_eigenvalues"] * x - xi


def replica_schedule(n: int, steps: int, exchange_versions) -> Schedule:
    """Synchronous rounds: all n workers take local steps 0..steps-1; round k: all workers meet
    the centre at local step count exchange_versions[k]."""
    rows = []
    for t in range(steps):
        rows += [("grad", t, float(t + 1), w, t, 0, True, t, 1.0, 0.0) for w in range(n)]
    for k, v in enumerate(exchange_versions):
        rows += [("exchange", k, float(v) + 0.5, w, v, 0, True, -1, 0.0, 0.0) for w in range(n)]
    frame = pd.DataFrame(
        rows,
        columns=[
            "kind",
            "update",
            "time",
            "worker",
            "version",
            "staleness",
            "used",
            "batch",
            "compute_time",
            "comm_time",
        ],
    ).sort_values("time", kind="stable")
    return Schedule(frame)


def test_easgd_tau1_matches_paper_synchronous_update():
    """Zhang et al. 2015 eq. (5)-(6) with tau = 1:
    x_i <- x_i - eta g_i(x_i) - alpha (x_i - x_c);  x_c <- x_c + alpha sum_i (x_i - x_c)."""
    wl, n, eta, alpha, seed, T = quad(), 3, 0.2, 0.15, 0, 20
    scheme = EASGD(n, 1, alpha)
    res = train(
        replica_schedule(n, T, range(T)), wl, lr=eta, seed=seed, scheme=scheme, eval_every=1
    )
    stream = DataStream(wl.n_train, n, B, seed)
    x0 = flat(wl.make_model(seed)).numpy()
    xs, xc = [x0.copy() for _ in range(n)], x0.copy()
    centres = []
    for t in range(T):
        new = [
            xs[i] - eta * grad_quad(wl, xs[i], stream, i, t) - alpha * (xs[i] - xc)
            for i in range(n)
        ]
        xc = xc + alpha * sum(xs[i] - xc for i in range(n))
        xs = new
        centres.append(xc.copy())
    np.testing.assert_allclose(res.params.numpy(), xc, rtol=1e-10, atol=1e-12)
    h = wl.info["hessian_eigenvalues"]
    np.testing.assert_allclose(
        res.frame["test_loss"], [0.5 * np.sum(h * c * c) for c in centres], rtol=1e-10
    )


def easgd_reference(wl, sched, scheme, eta, seed):
    """EASGD/EAMSGD: per worker, local steps with exchanges at their local step counts; rounds
    of the centre in their order, each round's workers using the same x_c."""
    n = scheme.n
    stream = DataStream(wl.n_train, n, B, seed)
    x0 = flat(wl.make_model(seed)).numpy()
    xs, vs, xc = [x0.copy() for _ in range(n)], [np.zeros_like(x0) for _ in range(n)], x0.copy()
    a, delta = scheme.alpha, scheme.momentum
    f = sched.frame
    ex = f[f["kind"] == "exchange"].sort_values(["update", "worker"])
    steps = {
        w: f[(f["kind"] == "grad") & (f["worker"] == w)].sort_values("update") for w in range(n)
    }
    pos = [0] * n
    snap = [x.copy() for x in xs]
    centres = []

    def advance(i, upto):
        while pos[i] < upto:
            j = int(steps[i]["batch"].iloc[pos[i]])
            g = grad_quad(wl, snap[i] + delta * vs[i], stream, i, j)
            vs[i] = delta * vs[i] - eta * g
            xs[i] = xs[i] + vs[i]
            snap[i] = xs[i].copy()
            pos[i] += 1

    for _, rnd in ex.groupby("update", sort=True):
        diffs = []
        for r in rnd.itertuples():
            advance(r.worker, r.version)
            snap[r.worker] = xs[r.worker].copy()  # x <- x_i (gradient taken here next)
            diffs.append((r.worker, xs[r.worker] - xc))
        for i, dif in diffs:
            xs[i] = xs[i] - a * dif
        xc = xc + a * sum(dif for _, dif in diffs)
        centres.append(xc.copy())
    return xc, centres


@pytest.mark.parametrize(
    "scheme",
    [EASGD(3, 3, 0.1), EASGD(3, 2, 0.1, momentum=0.6), EASGD(4, 2, 0.1, synchronous=False)],
    ids=["easgd", "eamsgd", "async-easgd"],
)
def test_easgd_matches_paper_algorithms_on_simulated_schedules(scheme):
    wl, eta, seed = quad(), 0.2, 1
    sched = simulate(scheme, DIST, updates=12, seed=2)
    res = train(
        sched, wl, lr=eta, seed=seed, eval_every=1, memory=Memory(max_samples=2 * B)
    )  # 2 per call
    xc, centres = easgd_reference(wl, sched, scheme, eta, seed)
    np.testing.assert_allclose(res.params.numpy(), xc, rtol=1e-10, atol=1e-12)
    h = wl.info["hessian_eigenvalues"]
    np.testing.assert_allclose(
        res.frame["test_loss"], [0.5 * np.sum(h * c * c) for c in centres], rtol=1e-10
    )
    assert len(res.frame) == sched.frame.loc[sched.frame["kind"] == "exchange", "update"].nunique()


def test_localsgd_and_diloco_match_numpy():
    """LocalSGD: tau local SGD steps, then every replica <- mean. DiLoCo: outer gradient
    Delta = x_c - mean x_i, Nesterov SGD m <- mu m + Delta, x_c <- x_c - lr_o (Delta + mu m)."""
    wl, n, eta, seed, T, tau = quad(), 3, 0.2, 0, 12, 3
    stream = DataStream(wl.n_train, n, B, seed)
    x0 = flat(wl.make_model(seed)).numpy()
    sched = replica_schedule(n, T, range(tau, T + 1, tau))
    for scheme, averaging in ((LocalSGD(n, tau), True), (DiLoCo(n, tau, 0.7, 0.9), False)):
        res = train(sched, wl, lr=eta, seed=seed, scheme=scheme)
        xs, xc, m = [x0.copy() for _ in range(n)], x0.copy(), np.zeros_like(x0)
        for t in range(T):
            xs = [xs[i] - eta * grad_quad(wl, xs[i], stream, i, t) for i in range(n)]
            if (t + 1) % tau == 0:
                mean = np.mean(xs, axis=0)
                if averaging:
                    xc = mean
                else:
                    outer = xc - mean
                    m = 0.9 * m + outer
                    xc = xc - 0.7 * (outer + 0.9 * m)
                xs = [xc.copy() for _ in range(n)]
        np.testing.assert_allclose(res.params.numpy(), xc, rtol=1e-10, atol=1e-12)
        assert len(res.frame) == T // tau


def test_diloco_h1_outer_sgd_rate1_equals_sync():
    """DiLoCo(n, 1, 1.0, 0.0) == Sync(n): one inner step then x_c <- mean x_i."""
    wl, n, seed = mlp_workload(), 3, 2
    a = train(simulate(Sync(n), DIST, updates=10, seed=0), wl, lr=0.1, seed=seed, eval_every=1)
    b = train(
        simulate(DiLoCo(n, 1, 1.0, 0.0), DIST, updates=10, seed=0),
        wl,
        lr=0.1,
        seed=seed,
        eval_every=1,
    )
    assert len(a.frame) == len(b.frame) == 10
    torch.testing.assert_close(b.params, a.params, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(b.frame["train_loss"], a.frame["train_loss"], rtol=1e-10)
    np.testing.assert_allclose(b.frame["test_loss"], a.frame["test_loss"], rtol=1e-10)


def test_max_bytes_bounds_the_wave_and_keeps_the_numbers(monkeypatch):
    """max_bytes caps the per-wave [k, P] tensors: with room for 4 rows of P parameters the
    wave's directions get 2 rows (<= 2 updates per wave) and a vmapped call 1 version; the
    numbers are the default run's (and the definition's) up to float rounding."""
    from toolkit.replay.batched import FlatModel

    train_mod = importlib.import_module("toolkit.replay.shared")

    wl, lr, seed = mlp_workload(), 0.15, 2
    row = 8 * sum(p.numel() for p in wl.make_model(0).parameters())  # float64 [P]
    calls: list[tuple[str, int]] = []
    grads, wave = FlatModel.grads, train_mod._wave_gradients

    def spy_grads(self, flats, xs, ys):
        calls.append(("grads", flats.shape[0]))
        return grads(self, flats, xs, ys)

    def spy_wave(fm, data, buf, idx, rel_upd, ver, weight, direction, *rest):
        calls.append(("wave", direction.shape[0]))
        return wave(fm, data, buf, idx, rel_upd, ver, weight, direction, *rest)

    monkeypatch.setattr(FlatModel, "grads", spy_grads)
    monkeypatch.setattr(train_mod, "_wave_gradients", spy_wave)
    for scheme in (KBatchAsync(6, 3), EASGD(4, 2, 0.2)):
        sched = simulate(scheme, DIST, updates=30, seed=3)
        calls.clear()
        ref = train(sched, wl, lr=lr, seed=seed, runtime=CPU)
        assert max(k for _, k in calls) > 2  # the default lets the wave grow
        calls.clear()
        small = train(
            sched, wl, lr=lr, seed=seed, runtime=CPU, memory=Memory(max_bytes=4 * row + row - 1)
        )
        assert max(k for kind, k in calls if kind == "grads") == 1
        assert max((k for kind, k in calls if kind == "wave"), default=0) <= 2
        torch.testing.assert_close(small.params, ref.params, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(small.frame["train_loss"], ref.frame["train_loss"], rtol=1e-10)
        tiny = train(
            sched, wl, lr=lr, seed=seed, runtime=CPU, memory=Memory(max_bytes=1)
        )  # k = 1 everywhere
        torch.testing.assert_close(tiny.params, ref.params, rtol=1e-10, atol=1e-12)
    monkeypatch.undo()
    sched = simulate(KBatchAsync(6, 3), DIST, updates=30, seed=3)
    versions, losses = reference_shared(sched, wl, lr, seed, 6)
    assert_matches(
        train(sched, wl, lr=lr, seed=seed, runtime=CPU, memory=Memory(max_bytes=1)),
        versions,
        losses,
    )


def test_machines_from_meta_without_a_scheme():
    """Without a scheme, the data shards follow meta['machines'] (not max worker id + 1)."""
    wl, lr, seed = mlp_workload(), 0.1, 4
    rows = [
        dict(
            kind="grad",
            update=u,
            time=float(u),
            worker=w,
            version=u,
            staleness=0,
            used=True,
            batch=u,
            compute_time=1.0,
            comm_time=0.0,
        )
        for u in range(5)
        for w in (0, 1)
    ]
    frame = pd.DataFrame(rows)
    res = train(Schedule(frame, meta={"machines": 3}), wl, lr=lr, seed=seed, runtime=CPU)
    assert res.manifest["machines"] == 3
    sched = Schedule(frame, meta={})
    assert_matches(res, *reference_shared(sched, wl, lr, seed, machines=3))
    two = train(sched, wl, lr=lr, seed=seed, runtime=CPU)
    assert two.manifest["machines"] == 2
    assert not torch.allclose(two.params, res.params)  # other shards, other batches
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="machines"):
            train(Schedule(frame, meta={"machines": bad}), wl, lr=lr, seed=seed)
    with pytest.raises(ValueError, match="worker"):
        train(Schedule(frame, meta={"machines": 1}), wl, lr=lr, seed=seed)


def _spy_stores(monkeypatch) -> list:
    """Record every VersionStore that train() builds (the module name is shadowed by train)."""
    train_mod = importlib.import_module("toolkit.replay.shared")
    stores: list = []

    class Spy(train_mod.VersionStore):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            stores.append(self)

    monkeypatch.setattr(train_mod, "VersionStore", Spy)
    return stores


def test_version_store_capacity_is_the_most_live_versions(monkeypatch):
    """Hand-built schedule, used rows (update: versions read)

        0: {0}   1: {0}   2: {1, 2}   3: {0, 3}   4: {2}   5: {0, 5}

    so max staleness is 5 (a window of the newest versions would need 6 rows). Waves (a wave
    starting at s takes the next updates that read only versions <= s): {0, 1}, {2}, {3, 4},
    {5}. Versions held (gradients are computed at the start of their wave; update u writes
    u + 1, over u when no later wave reads u):

    - wave {0, 1}: gradients at 0; update 0 writes 1 (0 is read by update 3): {0, 1}; update 1
      writes 2 (1 is read by update 2): {0, 1, 2}  -> 3 held
    - wave {2}: gradients at 1 and 2, then 1 is released: {0, 2}; update 2 writes 3 (2 is read
      by update 4): {0, 2, 3}  -> 3 held
    - wave {3, 4}: gradients at 0, 3, 2, then 2 is released: {0, 3}; update 3 writes 4 over 3:
      {0, 4}; update 4 writes 5 over 4: {0, 5}
    - wave {5}: gradients at 0 and 5, then 0 is released: {5}; update 5 writes 6 over 5: {6}.

    With one update per wave (max_wave=1) versions 2 and 3 and then 2 and 4 are held with 0:
    3 again. So capacity = peak = 3 (< 6), and the numbers are the definition's."""
    reads = {0: [0], 1: [0], 2: [1, 2], 3: [0, 3], 4: [2], 5: [0, 5]}
    rows, nb = [], [0, 0]
    for u, vs in reads.items():
        for i, v in enumerate(vs):
            rows.append(
                dict(
                    kind="grad",
                    update=u,
                    time=float(u),
                    worker=i,
                    version=v,
                    staleness=u - v,
                    used=True,
                    batch=nb[i],
                    compute_time=1.0,
                    comm_time=0.0,
                )
            )
            nb[i] += 1
    sched = Schedule(pd.DataFrame(rows), meta={})
    assert int(sched.used["staleness"].max()) + 1 == 6
    wl, lr, seed = mlp_workload(), 0.3, 5
    versions, losses = reference_shared(sched, wl, lr, seed, machines=2)
    stores = _spy_stores(monkeypatch)
    for kw in ({}, {"memory": Memory(max_wave=1)}):
        res = train(sched, wl, lr=lr, seed=seed, runtime=CPU, eval_every=1, **kw)
        assert (stores[-1].capacity, stores[-1].peak) == (3, 3)
        assert_matches(res, versions, losses)


def test_async_store_holds_about_n_versions_not_max_staleness(monkeypatch):
    """Async(n): at any time each worker's pending gradient pins one version, so besides the
    versions a wave writes before its readers run, about n are live; the staleness of
    exponential workers reaches several times n, and a window of the newest versions would
    need max staleness + 1 rows. The store's capacity is reached (peak) and is at most n plus
    the longest wave."""
    train_mod = importlib.import_module("toolkit.replay.shared")
    waves, inner = [], train_mod._waves

    def spy_waves(*args):
        out = inner(*args)
        waves.append(int(np.diff(out).max()))
        return out

    monkeypatch.setattr(train_mod, "_waves", spy_waves)
    stores = _spy_stores(monkeypatch)
    n = 64
    sched = simulate(Async(n), DIST, updates=600, seed=0)
    smax = int(sched.used["staleness"].max())
    assert smax > 2 * n
    res = train(sched, mlp_workload(), lr=0.01, seed=0, runtime=CPU, eval_every=600)  # stable
    assert res.status == "ok"
    store = stores[-1]
    assert store.peak == store.capacity <= n + waves[-1] < smax + 1
