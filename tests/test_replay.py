"""Replay building blocks and contracts: data streams, flat models, the version store,
staleness weights, Results files, determinism, divergence and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats as st
import torch
import torch.nn.functional as F
from torch import nn

from toolkit.cluster.clock import simulate
from toolkit.cluster.schedule import Schedule
from toolkit.models.comm import ParameterServer
from toolkit.replay import (
    DataStream,
    FlatModel,
    Memory,
    Results,
    Runtime,
    VersionStore,
    resolve_device,
    scheme_from_meta,
    train,
)
from toolkit.schemes import EASGD, Async, Backup, KBatchAsync, LocalSGD, Sync
from toolkit.workloads import Workload, get_workload, seeded_model

CPU = Runtime(device="cpu")
DIST = st.expon(loc=1.0, scale=0.5)


def small_classifier(n_train: int = 256) -> Workload:
    g = torch.Generator().manual_seed(7)
    x = torch.randn(n_train + 64, 6, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()

    def make_model(seed: int) -> nn.Module:
        return seeded_model(
            seed, lambda: nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 2))
        )

    return Workload(
        "tiny",
        make_model,
        x[:n_train],
        y[:n_train],
        x[n_train:],
        y[n_train:],
        loss=F.cross_entropy,
        batch_size=8,
        lr=0.1,
    )


# ---------------------------------------------------------------------------- data stream
def test_data_stream_shards_and_epochs():
    s = DataStream(n_train=103, machines=4, batch_size=5, seed=3)
    assert s.shard == 25 and s.per_epoch == 5
    shards = [set(s.shards[w].tolist()) for w in range(4)]
    assert all(len(a & b) == 0 for i, a in enumerate(shards) for b in shards[i + 1 :])
    for w in range(4):
        for epoch in range(2):
            seen = torch.cat([s.indices(w, epoch * 5 + j) for j in range(5)]).tolist()
            assert len(seen) == len(set(seen)) == 25  # an epoch is a permutation of the shard
            assert set(seen) == shards[w]
    # epochs differ, and batch j is a function of (seed, w, j) only
    assert not torch.equal(s.indices(1, 0), s.indices(1, 5))
    fresh = DataStream(103, 4, 5, seed=3)
    assert torch.equal(fresh.indices(2, 17), s.indices(2, 17))
    assert not torch.equal(DataStream(103, 4, 5, seed=4).indices(2, 17), s.indices(2, 17))
    assert s.many(np.array([0, 3]), np.array([1, 2])).shape == (2, 5)


def test_data_stream_rejects_too_many_workers():
    with pytest.raises(ValueError, match="workers"):
        DataStream(n_train=100, machines=30, batch_size=4, seed=0)
    with pytest.raises(ValueError, match="batch_size"):
        DataStream(n_train=100, machines=1, batch_size=101, seed=0)


# ---------------------------------------------------------------------------- flat model
def test_flat_model_vmapped_grads_equal_autograd_loop():
    wl = small_classifier()
    model = wl.make_model(0)
    fm = FlatModel(model, wl.loss)
    base = fm.flat()
    flats = torch.stack([base, base + 0.1, base - 0.2])
    xs = wl.x_train[:24].view(3, 8, 6)
    ys = wl.y_train[:24].view(3, 8)
    g, loss = fm.grads(flats, xs, ys)
    for k in range(3):
        nn.utils.vector_to_parameters(flats[k], model.parameters())
        model.zero_grad()
        ref = wl.loss(model(xs[k]), ys[k])
        ref.backward()
        ref_g = torch.cat([p.grad.flatten() for p in model.parameters()])
        torch.testing.assert_close(g[k], ref_g, rtol=1e-5, atol=1e-6)
        assert float(loss[k]) == pytest.approx(float(ref.detach()), rel=1e-6)


def test_version_store_holds_only_versions_not_released():
    """Slots are reused after release, versions keep their values whatever slot they get,
    and reading a released/unwritten version, overfilling or releasing the current one raise."""
    buf = VersionStore(torch.zeros(3), capacity=3)
    buf.push().fill_(1)
    buf.push().fill_(2)  # holds 0, 1, 2: full
    with pytest.raises(RuntimeError, match="full"):
        buf.push()
    buf.release(1)
    buf.push().fill_(3)  # takes version 1's slot
    assert buf.newest == 3 and len(buf) == 3 and 1 not in buf and buf.peak == 3
    got = buf.gather(np.array([3, 0, 2, 3]))[:, 0]
    assert torch.equal(got, torch.tensor([3.0, 0.0, 2.0, 3.0]))
    row = buf.push(in_place=True)  # version 4 overwrites version 3
    assert torch.equal(row, torch.full((3,), 3.0))  # old values, for an in-place update
    row.add_(1)
    assert 3 not in buf and torch.equal(buf[4], torch.full((3,), 4.0)) and len(buf) == 3
    with pytest.raises(RuntimeError, match="not retained"):
        buf[1]
    with pytest.raises(RuntimeError, match="not retained"):
        buf[5]
    with pytest.raises(RuntimeError, match="current"):
        buf.release(4)
    with pytest.raises(ValueError, match="capacity"):
        VersionStore(torch.zeros(3), capacity=0)


def test_max_live_counts_overlapping_intervals():
    """max_live = the largest number of inclusive intervals covering one tick, checked
    against counting every tick directly on random intervals."""
    from toolkit.replay.batched import max_live

    rng = np.random.default_rng(0)
    for _ in range(50):
        born = rng.integers(-3, 30, size=int(rng.integers(1, 12)))
        last = born + rng.integers(0, 10, size=len(born))
        ticks = np.arange(born.min(), last.max() + 1)
        direct = max(int(((born <= t) & (t <= last)).sum()) for t in ticks)
        assert max_live(born, last) == direct
    assert max_live(np.array([0, 1]), np.array([0, 1])) == 1  # [0,0] and [1,1] do not overlap
    assert max_live(np.array([], dtype=int), np.array([], dtype=int)) == 0
    with pytest.raises(ValueError, match="last"):
        max_live(np.array([2]), np.array([1]))


def test_resolve_device_and_scheme_from_meta():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="device"):
        resolve_device("nonsense")
    assert scheme_from_meta({"scheme": Backup(4, 2).to_dict()}) == Backup(4, 2)
    assert scheme_from_meta({}) is None


# ---------------------------------------------------------------------------- train contract
def test_results_columns_evaluation_points_and_determinism():
    wl = small_classifier()
    sched = simulate(Async(4), DIST, updates=30, seed=0)
    a = train(sched, wl, lr=0.1, seed=1, eval_every=7)
    b = train(sched, wl, lr=0.1, seed=1, eval_every=7)
    pd.testing.assert_frame_equal(a.frame, b.frame)
    assert torch.equal(a.params, b.params)
    c = train(sched, wl, lr=0.1, seed=2, eval_every=7)
    assert not np.allclose(a.frame["train_loss"], c.frame["train_loss"])
    f = a.frame
    assert list(f["update"]) == list(range(30))
    np.testing.assert_array_equal(f["time"], sched.update_times())
    evaluated = np.flatnonzero(f["test_loss"].notna().to_numpy())
    assert evaluated.tolist() == [6, 13, 20, 27, 29]
    assert f["test_accuracy"].notna().sum() == 5
    assert f["bytes"].isna().all()  # no comm model in the Schedule
    assert ((f["test_accuracy"].dropna() >= 0) & (f["test_accuracy"].dropna() <= 1)).all()
    m = a.manifest
    for key in (
        "scheme",
        "workload",
        "lr",
        "seed",
        "staleness",
        "torch",
        "numpy",
        "device",
        "git_commit",
        "batch_size",
        "momentum",
    ):
        assert key in m
    assert m["scheme"] == Async(4).to_dict() and m["workload"] == "tiny"


def test_bytes_follow_comm_model():
    wl = small_classifier()
    comm = ParameterServer(nbytes=1000.0, bandwidth=1e6)
    res = train(simulate(KBatchAsync(4, 2), DIST, comm=comm, updates=10, seed=0), wl, seed=0)
    np.testing.assert_allclose(res.frame["bytes"], 2 * 1000.0 * 2 * np.arange(1, 11))
    res = train(simulate(LocalSGD(2, 3), DIST, comm=comm, updates=9, seed=0), wl, seed=0)
    np.testing.assert_allclose(res.frame["bytes"], 2 * 1000.0 * 2 * np.arange(1, 4))


def test_results_save_load_roundtrip(tmp_path):
    wl = small_classifier()
    res = train(simulate(Backup(3, 1), DIST, updates=12, seed=0), wl, seed=0, eval_every=5)
    for fmt in ("parquet", "csv"):
        out = res.save(tmp_path / fmt, fmt=fmt)
        back = Results.load(out)
        pd.testing.assert_frame_equal(back.frame, res.frame)
        assert back.status == res.status
        assert back.manifest == json.loads(json.dumps(res.manifest))
        assert torch.equal(back.params, res.params)
    with pytest.raises(ValueError, match="fmt"):
        res.save(tmp_path / "x", fmt="xlsx")


def test_a_loss_that_blows_up_but_stays_finite_is_divergence():
    """At lr = 1e18 logistic regression's loss stays finite (about 1e17) but nothing trains: a
    run whose last train loss is above BLOWUP x max(first loss, 1) ends as diverged (judged at
    the end: a transient above it on the way is no verdict, see tests/test_divergence.py)."""
    from toolkit.replay.recorder import BLOWUP

    sched = simulate(Sync(2), DIST, updates=40, seed=0)
    wl = get_workload("logreg", n_train=400)
    res = train(sched, wl, lr=1e18, seed=0, eval_every=10)
    assert res.status == "diverged" and "above" in res.message, res.message
    loss = res.frame["train_loss"].to_numpy()
    assert np.isfinite(loss).all() and loss[-1] > BLOWUP * max(loss[0], 1.0)
    assert res.manifest["stopped"] == "diverged" and len(loss) == 40
    assert train(sched, wl, lr=0.05, seed=0, eval_every=10).status == "ok"


def test_divergence_is_a_result_not_an_exception():
    """Gradient descent on a quadratic diverges iff lr > 2 / h_max (|1 - lr h| > 1)."""
    wl = get_workload(
        "quadratic",
        d=3,
        eigenvalues=[0.5, 1.0, 2.0],
        noise_std=0.0,
        n_train=256,
        batch_size=8,
        dtype=torch.float64,
    )
    sched = simulate(Sync(2), DIST, updates=3000, seed=0)
    bad = train(sched, wl, lr=1.1, seed=0)  # 2 / h_max = 1.0
    assert bad.status == "diverged"
    assert 0 < len(bad.frame) < 3000 and "loss became" in bad.message
    good = train(simulate(Sync(2), DIST, updates=50, seed=0), wl, lr=0.9, seed=0)
    assert good.status == "ok" and len(good.frame) == 50
    assert bad.manifest["stopped"] == "diverged" and good.manifest["stopped"] == "budget"
    # closed form: x_T = (1 - lr h)^T x_0 coordinate-wise (no noise)
    x0 = nn.utils.parameters_to_vector(wl.make_model(0).parameters()).detach().numpy()
    h = np.array([0.5, 1.0, 2.0])
    np.testing.assert_allclose(good.params.numpy(), (1 - 0.9 * h) ** 50 * x0, atol=1e-12)


def test_bad_input_is_a_clear_value_error():
    wl = small_classifier()
    sched = simulate(Sync(2), DIST, updates=5, seed=0)
    with pytest.raises(ValueError, match="lr"):
        train(sched, wl, lr=0.0)
    with pytest.raises(ValueError, match="lr"):
        train(sched, wl, lr=-1.0)
    with pytest.raises(ValueError, match="batch_size"):
        train(sched, wl, batch_size=10_000)
    with pytest.raises(ValueError, match="staleness"):
        train(sched, wl, staleness="sometimes")
    with pytest.raises(ValueError, match="max_staleness"):
        train(sched, wl, staleness="drop")
    with pytest.raises(ValueError, match="nesterov"):
        train(sched, wl, momentum=0.9, nesterov="yes")
    with pytest.raises(ValueError, match="memory"):
        train(sched, wl, memory={"max_wave": 2})
    with pytest.raises(ValueError, match="max_wave"):
        train(sched, wl, memory=Memory(max_wave=0))
    with pytest.raises(ValueError, match="workers"):
        train(simulate(Sync(40), DIST, updates=2, seed=0), wl)  # 256 // 40 < 8
    frame = sched.frame.copy()
    frame.loc[0, "version"] = 3  # a gradient from the future
    with pytest.raises(ValueError, match="version"):
        train(Schedule(frame, meta=sched.meta), wl)
    with pytest.raises(ValueError, match="momentum"):
        train(simulate(EASGD(2, 2, 0.1), DIST, updates=4, seed=0), wl, momentum=0.5)
    ex = simulate(LocalSGD(2, 2), DIST, updates=4, seed=0)
    with pytest.raises(ValueError, match="scheme"):
        train(Schedule(ex.frame), wl)


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_async64_mnist1d_mlp_replay_stays_under_2gb(tmp_path):
    """The spec's memory bound: replaying Async(64) on the MNIST-1D MLP under 2 GB peak RSS
    (measured in a fresh process, so nothing else this test session allocated counts)."""
    code = (
        "import resource, scipy.stats as st\n"
        "from toolkit.cluster.clock import simulate\n"
        "from toolkit.replay import Runtime, train\n"
        "from toolkit.schemes import Async\n"
        "from toolkit.workloads import get_workload\n"
        "s = simulate(Async(64), st.expon(loc=1, scale=0.5), updates=3000, seed=0)\n"
        "r = train(s, get_workload('mnist1d_mlp'), lr=0.05, seed=0, runtime=Runtime('cpu'))\n"
        "assert r.status == 'ok' and len(r.frame) == 3000\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=300,
    )
    peak_kib = int(out.stdout.strip().splitlines()[-1])  # Linux: ru_maxrss in KiB
    assert peak_kib < 2 * 1024 * 1024


# ---------------------------------------------------------------------------- review fixes
def test_data_stream_batches_follow_the_documented_definition():
    """Batch j of worker w = positions (j mod E) B .. + B of worker w's shard sorted by the
    keys splitmix64(seed, w, e, i), e = j // E; pairs from several epochs at once (and after
    the epoch cache is evicted) give the same indices as one pair at a time."""
    from toolkit.replay.batched import _mix, _splitmix64

    s = DataStream(n_train=103, machines=4, batch_size=5, seed=3)
    base = np.uint64(_mix(3, 0xDA7A))
    shards = s.shards.numpy()

    def definition(w: int, j: int) -> np.ndarray:
        e, p = divmod(j, s.per_epoch)
        i = np.arange(s.shard, dtype=np.uint64)
        keys = _splitmix64(_splitmix64(_splitmix64(base + np.uint64(w)) + np.uint64(e)) + i)
        return shards[w][np.argsort(keys, kind="stable")][p * 5 : p * 5 + 5]

    rng = np.random.default_rng(0)
    w = rng.integers(0, 4, size=40)
    j = rng.integers(0, 30, size=40)  # epochs 0..5, mixed in one call
    s._epoch_limit = 2  # force evictions between epochs
    got = s.many(w, j).numpy()
    want = np.stack([definition(int(a), int(b)) for a, b in zip(w, j, strict=True)])
    np.testing.assert_array_equal(got, want)
    assert s.many(np.array([], dtype=int), np.array([], dtype=int)).shape == (0, 5)


class _WithUnused(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(6, 2)
        self.unused = nn.Parameter(torch.ones(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x)


def test_flat_model_grad_is_plain_autograd_on_shared_flat_storage():
    """grad() == torch.autograd.grad at the same point (0 for an unused parameter), call after
    call, also after model.zero_grad(); the module's parameters are views of one flat tensor."""
    wl = small_classifier()
    ref = seeded_model(0, _WithUnused)
    model = seeded_model(0, _WithUnused)
    fm = FlatModel(model, wl.loss)
    base = fm.flat()
    assert torch.equal(base, nn.utils.parameters_to_vector(ref.parameters()).detach())
    params = list(model.parameters())
    assert all(
        p.untyped_storage().data_ptr() == fm._pflat.untyped_storage().data_ptr() for p in params
    )
    x, y = wl.x_train[:16], wl.y_train[:16]
    for shift in (0.0, 0.3, -0.1):  # the flat gradient buffer is reset between calls
        point = base + shift
        if shift < 0:
            model.zero_grad()  # sets .grad to None: the next grad() re-attaches the flat buffer
        g, loss = fm.grad(point, x, y)
        nn.utils.vector_to_parameters(point, ref.parameters())
        ref_loss = wl.loss(ref(x), y)
        ref_g = torch.autograd.grad(ref_loss, list(ref.parameters()), allow_unused=True)
        ref_g = [
            torch.zeros_like(p) if r is None else r
            for r, p in zip(ref_g, ref.parameters(), strict=True)
        ]
        torch.testing.assert_close(g, torch.cat([r.flatten() for r in ref_g]), rtol=0, atol=0)
        assert float(loss) == float(ref_loss.detach())
        assert fm.names[0] == "unused" and torch.equal(g[:3], torch.zeros(3))


def test_charlm_replay_accuracy_is_per_position_like_workload_evaluate(tmp_path):
    """Replay's test metrics are Workload.evaluate's at the same parameters (one routine):
    accuracy per predicted position, not per window (which would be context x larger)."""
    path = tmp_path / "text.txt"
    path.write_text("ab" * 400 + "aab" * 100, encoding="utf-8")
    wl = get_workload("charlm", path=path, context=8, d_model=8, n_head=2, n_layer=1, batch_size=4)
    res = train(simulate(Sync(2), DIST, updates=12, seed=0), wl, lr=0.3, seed=0, runtime=CPU)
    model = wl.make_model(0)
    nn.utils.vector_to_parameters(res.params, model.parameters())
    ref = wl.evaluate(model)
    last = res.evaluations.iloc[-1]
    assert last["test_accuracy"] == pytest.approx(ref["test_accuracy"], rel=1e-12)
    assert last["test_loss"] == pytest.approx(ref["test_loss"], rel=1e-6)
    assert 0 < last["test_accuracy"] <= 1  # nonzero, so a per-window count would differ


def _boom_after_partial_write(target_arg: int):
    """A writer that leaves a half-written file at its target, then is 'killed'."""

    def boom(*args, **kwargs):
        with open(args[target_arg], "wb") as f:
            f.write(b"half")
        raise KeyboardInterrupt("killed while writing the next checkpoint")

    return boom


@pytest.mark.parametrize(
    ("owner", "attr", "target_arg"),
    [(pd.DataFrame, "to_parquet", 1), (torch, "save", 1), (Path, "write_text", 0)],
    ids=["frame", "params", "manifest"],
)
def test_interrupted_checkpoint_write_leaves_a_loadable_checkpoint(
    tmp_path, monkeypatch, owner, attr, target_arg
):
    wl = small_classifier()
    sched = simulate(Sync(2), DIST, updates=6, seed=0)
    first = train(sched, wl, seed=0, eval_every=3)
    second = train(sched, wl, seed=1, eval_every=3)
    out = first.save(tmp_path / "run")
    with monkeypatch.context() as m:
        m.setattr(owner, attr, _boom_after_partial_write(target_arg))
        with pytest.raises(KeyboardInterrupt):
            second.save(out)
    back = Results.load(out)  # every file is one complete version (first's or second's)
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.json",
        "params.pt",
        "results.parquet",
    ]
    if attr == "to_parquet":  # nothing of the second save was in place yet
        pd.testing.assert_frame_equal(back.frame, first.frame)
        assert torch.equal(back.params, first.params)
    else:
        pd.testing.assert_frame_equal(back.frame, second.frame)


def test_switching_format_removes_the_other_results_file_only_after_writing(tmp_path, monkeypatch):
    wl = small_classifier()
    res = train(simulate(Sync(2), DIST, updates=6, seed=0), wl, seed=0)
    out = res.save(tmp_path / "run", fmt="csv")
    with monkeypatch.context() as m:
        m.setattr(pd.DataFrame, "to_parquet", _boom_after_partial_write(1))
        with pytest.raises(KeyboardInterrupt):
            res.save(out, fmt="parquet")
    assert (out / "results.csv").exists() and not (out / "results.parquet").exists()
    pd.testing.assert_frame_equal(Results.load(out).frame, res.frame)
    res.save(out, fmt="parquet")
    assert (out / "results.parquet").exists() and not (out / "results.csv").exists()


def test_divergence_is_detected_at_the_next_loss_check():
    """Train losses are read every CHECK_EVERY rows (and at evaluations): a diverging run
    stops at the first check after its first non-finite loss and keeps the rows up to it."""
    from toolkit.replay.recorder import CHECK_EVERY

    wl = get_workload(
        "quadratic",
        d=2,
        eigenvalues=[1.0, 2.0],
        noise_std=0.0,
        n_train=256,
        batch_size=8,
        dtype=torch.float64,
    )
    sched = simulate(Sync(2), DIST, updates=6000, seed=0)
    bad = train(sched, wl, lr=1.5, seed=0, eval_every=10**9)  # |1 - 1.5 * 2| = 2 > 1
    loss = bad.frame["train_loss"].to_numpy()
    first = int(np.flatnonzero(~np.isfinite(loss))[0])
    assert bad.status == "diverged" and f"at update {first}" in bad.message
    assert len(bad.frame) == (first // CHECK_EVERY + 1) * CHECK_EVERY < 6000
    assert np.isfinite(loss[:first]).all()


def test_deterministic_flag_is_scoped_to_the_run():
    wl = small_classifier()
    sched = simulate(Async(3), DIST, updates=10, seed=0)
    a = train(sched, wl, seed=0, runtime=CPU)
    assert not torch.are_deterministic_algorithms_enabled()
    b = train(sched, wl, seed=0, runtime=Runtime(device="cpu", deterministic=True))
    assert not torch.are_deterministic_algorithms_enabled()  # restored
    pd.testing.assert_frame_equal(a.frame, b.frame)
    assert torch.equal(a.params, b.params)
    with pytest.raises(ValueError, match="max_bytes"):
        train(sched, wl, memory=Memory(max_bytes=0))
