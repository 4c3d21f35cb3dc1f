"""Workloads: shapes, seeded models, vmap-friendliness (replay's contract), closed forms."""

from __future__ import annotations

import hashlib
import os
import pickle
import random
import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import warm_cli
from torch.func import functional_call, grad, jacrev, vmap

import toolkit.workloads as workloads
from toolkit.files import atomic_write
from toolkit.workloads import WORKLOADS, Workload, get_workload, register_workload
from toolkit.workloads import mnist1d as m1d

# Small instances of every built-in workload (cifar10_resnet: ResNet-18's depth at width 8).
SMALL = {
    "quadratic": dict(d=6, n_train=64, optimum=np.linspace(-1.0, 2.0, 6)),
    "logreg": {},
    "mnist1d_mlp": {},
    "mnist1d_cnn": {},
    "digits_cnn": {},
    "cifar10_resnet": dict(synthetic=True, n_train=6, n_test=2, width=8),
    "charlm": dict(synthetic=True, n_train=6, n_test=2, context=12, d_model=32, n_head=4),
}
OUTPUT_SHAPE = {  # model output shape for a batch of 3 inputs
    "quadratic": (3,),
    "logreg": (3, 10),
    "mnist1d_mlp": (3, 10),
    "mnist1d_cnn": (3, 10),
    "digits_cnn": (3, 10),
    "cifar10_resnet": (3, 10),
    "charlm": (3, 12, 32),
}


@pytest.fixture(autouse=True, scope="module")
def _cache_in_tmp_and_one_thread(tmp_path_factory):
    """Keep the MNIST-1D disk cache out of the user's home during tests, and use one torch
    thread: on a shared 2-core machine two intra-op threads made these small models ~10x slower
    (measured: 300 SGD steps of the MNIST-1D MLP, 2.1 s with 1 thread vs 21 s with 2)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TOOLKIT_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def built() -> dict[str, Workload]:
    return {name: get_workload(name, **kwargs) for name, kwargs in SMALL.items()}


def _params(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach() for k, v in model.named_parameters()}


def test_every_builtin_is_covered():
    assert set(SMALL) == set(WORKLOADS)


@pytest.mark.parametrize("name", list(SMALL))
def test_shapes_and_finite_loss(built, name):
    w = built[name]
    assert w.name == name
    assert len(w.x_train) == len(w.y_train) > 0 and len(w.x_test) == len(w.y_test) > 0
    assert w.x_train.shape[1:] == w.x_test.shape[1:]
    model = w.make_model(0)
    out = model(w.x_train[:3])
    assert out.shape == OUTPUT_SHAPE[name]
    loss = w.loss(out, w.y_train[:3])
    assert loss.shape == () and torch.isfinite(loss)
    result = w.evaluate(model)
    assert np.isfinite(result["test_loss"])
    if w.accuracy:
        assert 0.0 <= result["test_accuracy"] <= 1.0
        assert w.y_train.dtype == torch.int64
        assert int(w.y_train.min()) >= 0 and int(w.y_train.max()) < out.shape[-1]


@pytest.mark.parametrize("name", list(SMALL))
def test_make_model_is_seeded_and_leaves_global_rng_alone(built, name):
    w = built[name]
    state = torch.get_rng_state()
    a, b, c = _params(w.make_model(0)), _params(w.make_model(0)), _params(w.make_model(1))
    assert torch.equal(state, torch.get_rng_state())
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def _double(t: torch.Tensor) -> torch.Tensor:
    return t.double() if t.is_floating_point() else t


@pytest.mark.parametrize("name", list(SMALL))
@pytest.mark.parametrize("batched_data", [False, True], ids=["shared-batch", "own-batch"])
def test_vmap_grad_matches_backward_loop(built, name, batched_data):
    """Replay's contract: grad of loss(functional_call(model, params, (x,)), y) under vmap over
    3 stacked parameter versions equals 3 ordinary backward passes.

    In float64, so that the comparison is of the algebra, not of roundoff: in float32 the
    GroupNorm ResNet's vmapped and looped gradients (and either one against float64) differ by a
    few percent of the largest entry of some conv weights' gradients, while in float64 they
    agree to ~1e-15 (measured; cancellation in GroupNorm's backward).
    """
    w = built[name]
    models = [w.make_model(seed).double() for seed in range(3)]
    stacked = {k: torch.stack([_params(m)[k] for m in models]) for k in _params(models[0])}
    x_train, y_train = _double(w.x_train), _double(w.y_train)
    if batched_data:  # each version sees its own batch of 2
        xs = torch.stack([x_train[2 * i : 2 * i + 2] for i in range(3)])
        ys = torch.stack([y_train[2 * i : 2 * i + 2] for i in range(3)])
        in_dims, batches = (0, 0, 0), [(xs[i], ys[i]) for i in range(3)]
    else:
        xs, ys = x_train[:2], y_train[:2]
        in_dims, batches = (0, None, None), [(xs, ys)] * 3
    base = models[0]

    def loss(params, x, y):
        return w.loss(functional_call(base, params, (x,)), y)

    losses = vmap(loss, in_dims=in_dims)(stacked, xs, ys)
    grads = vmap(grad(loss), in_dims=in_dims)(stacked, xs, ys)
    for i, (model, (x, y)) in enumerate(zip(models, batches, strict=True)):
        value = w.loss(model(x), y)
        value.backward()
        torch.testing.assert_close(losses[i], value.detach(), rtol=1e-10, atol=1e-12)
        for k, p in model.named_parameters():
            torch.testing.assert_close(grads[k][i], p.grad, rtol=1e-8, atol=1e-12)


# --- quadratic ---------------------------------------------------------------------------------


def _closed_form(w: Workload, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray, float]:
    h, star = w.info["hessian_eigenvalues"], w.info["optimum"]
    delta = x.detach().numpy() - star
    return h, delta, 0.5 * float(np.sum(h * delta**2))


def test_quadratic_batch_gradient_is_exact():
    """Mean gradient over a batch = H (x - x*) - mean(xi), and the test loss is f(x)."""
    w = get_workload(
        "quadratic", d=7, noise_std=0.5, optimum=np.arange(7.0), n_train=40, dtype=torch.float64
    )
    model = w.make_model(3)
    batch = w.x_train[5:21]
    w.loss(model(batch), w.y_train[5:21]).backward()
    h, delta, f = _closed_form(w, model.x)
    expected = h * delta - batch.numpy().mean(axis=0)
    np.testing.assert_allclose(model.x.grad.numpy(), expected, rtol=1e-12, atol=1e-12)
    assert w.evaluate(model)["test_loss"] == pytest.approx(f, rel=1e-12)


def test_quadratic_without_noise_gives_the_true_gradient():
    w = get_workload("quadratic", d=5, noise_std=0.0, optimum=np.ones(5), dtype=torch.float64)
    assert torch.count_nonzero(w.x_train) == 0
    model = w.make_model(1)
    w.loss(model(w.x_train[:8]), w.y_train[:8]).backward()
    h, delta, _ = _closed_form(w, model.x)
    np.testing.assert_allclose(model.x.grad.numpy(), h * delta, rtol=1e-12)


def test_quadratic_spectrum_is_the_hessian():
    """The Hessian of the test loss (autograd) has exactly the advertised eigenvalues."""
    w = get_workload("quadratic", d=6, h_max=2.0, condition_number=50.0, dtype=torch.float64)
    expected = np.geomspace(2.0 / 50.0, 2.0, 6)
    np.testing.assert_allclose(w.info["hessian_eigenvalues"], expected, rtol=1e-12)
    model = w.make_model(0)

    def f(x):
        return w.loss(functional_call(model, {"x": x}, (w.x_test,)), w.y_test)

    hess = jacrev(jacrev(f))(model.x.detach()).numpy()
    np.testing.assert_allclose(np.linalg.eigvalsh(hess), expected, rtol=1e-12)
    assert w.lr == pytest.approx(1.0 / 2.0)

    given = get_workload("quadratic", d=3, eigenvalues=[3.0, 1.0, 2.0])
    np.testing.assert_array_equal(given.info["hessian_eigenvalues"], [3.0, 1.0, 2.0])


def test_quadratic_noise_has_the_requested_std():
    """Sample variance of the xi's within 5 standard errors of sigma^2 (SE = sigma^2
    sqrt(2 / (N - 1)) for Gaussian data)."""
    sigma, n, d = 0.7, 2000, 10
    w = get_workload("quadratic", d=d, noise_std=sigma, n_train=n, data_seed=5)
    xi = w.x_train.double().numpy().ravel()
    se = sigma**2 * np.sqrt(2.0 / (xi.size - 1))
    assert abs(xi.var(ddof=1) - sigma**2) < 5 * se
    assert abs(xi.mean()) < 5 * sigma / np.sqrt(xi.size)
    again = get_workload("quadratic", d=d, noise_std=sigma, n_train=n, data_seed=5)
    assert torch.equal(w.x_train, again.x_train)


def test_quadratic_x0_fixes_the_start():
    w = get_workload("quadratic", d=3, x0=[1.0, -2.0, 0.5])
    for seed in (0, 1):
        np.testing.assert_array_equal(w.make_model(seed).x.detach().numpy(), [1.0, -2.0, 0.5])


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        (dict(d=0), "d"),
        (dict(n_train=0), "n_train"),
        (dict(batch_size=0), "batch_size"),
        (dict(d=3, eigenvalues=[1.0, 2.0]), "eigenvalues"),
        (dict(d=2, eigenvalues=[1.0, -1.0]), "eigenvalues"),
        (dict(condition_number=0.5), "condition_number"),
        (dict(noise_std=-1.0), "noise_std"),
        (dict(d=2, optimum=[1.0]), "optimum"),
        (dict(d=2, x0=[1.0, 2.0, 3.0]), "x0"),
    ],
)
def test_quadratic_bad_input(kwargs, field):
    with pytest.raises(ValueError, match=field):
        get_workload("quadratic", **kwargs)


# --- MNIST-1D ----------------------------------------------------------------------------------


def test_mnist1d_shapes_and_labels(built):
    w = built["mnist1d_mlp"]
    assert w.x_train.shape == (4000, 40) and w.x_test.shape == (1000, 40)
    assert w.x_train.dtype == torch.float32
    assert set(w.y_train.unique().tolist()) == set(range(10))
    assert set(w.y_test.unique().tolist()) <= set(range(10))
    # All three MNIST-1D workloads share the same data.
    assert torch.equal(built["logreg"].x_train, w.x_train)
    assert torch.equal(built["mnist1d_cnn"].y_test, w.y_test)


def test_mnist1d_generation_is_deterministic_and_keeps_global_rng_state():
    from mnist1d.data import get_dataset_args, make_dataset

    np.random.seed(123)  # noqa: NPY002 (the legacy global state is what we check)
    random.seed(456)
    np_before, py_before = np.random.get_state(), random.getstate()  # noqa: NPY002
    x1, y1 = m1d._generate(100, 7)
    x2, y2 = m1d._generate(100, 7)
    np_after = np.random.get_state()  # noqa: NPY002
    assert np_before[0] == np_after[0] and np.array_equal(np_before[1], np_after[1])
    assert np_before[2:] == np_after[2:]
    assert py_before == random.getstate()
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    assert not np.array_equal(x1, m1d._generate(100, 8)[0])
    # The split in order reproduces the package's own 80/20 split of the same samples.
    args = get_dataset_args()
    args.num_samples, args.seed = 100, 7
    reference = make_dataset(args)
    xtr, ytr, xte, yte = m1d.mnist1d_arrays(80, 20, seed=7, disk_cache=False)
    np.testing.assert_allclose(xtr, reference["x"], rtol=1e-6)
    np.testing.assert_array_equal(ytr, reference["y"])
    np.testing.assert_allclose(xte, reference["x_test"], rtol=1e-6)
    np.testing.assert_array_equal(yte, reference["y_test"])


def test_mnist1d_disk_cache_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("TOOLKIT_CACHE_DIR", str(tmp_path))
    x, y, _, _ = m1d.mnist1d_arrays(40, 10, seed=3)
    path = tmp_path / m1d.cache_key(50, 3)
    assert path.exists() and path.name.startswith("mnist1d_n50_seed3_")
    x_disk, y_disk = m1d._cached.__wrapped__(50, 3, True)  # bypass the in-memory cache
    np.testing.assert_array_equal(x_disk[:40], x)
    np.testing.assert_array_equal(y_disk[:40], y)
    path.write_bytes(b"not an npz")  # a corrupt cache file is regenerated, not an error
    x_again, _ = m1d._cached.__wrapped__(50, 3, True)
    np.testing.assert_array_equal(x_again[:40], x)


# A process that waits for the file named by its first argument, then reads MNIST-1D through the
# disk cache and prints a digest of the arrays. Each rename is held for a second, so the writes
# of processes that generate at about the same time overlap.
FIRST_USE = """
import hashlib, os, sys, time, warnings
from pathlib import Path
warnings.simplefilter("error")  # a warning fails the process
from toolkit.workloads.mnist1d import mnist1d_arrays
real_replace = os.replace
def held_replace(src, dst):
    time.sleep(1.0)
    return real_replace(src, dst)
os.replace = held_replace
while not Path(sys.argv[1]).exists():
    time.sleep(0.01)
x, y, _, _ = mnist1d_arrays(400, 100, seed=11)
print(hashlib.sha256(x.tobytes() + y.tobytes()).hexdigest(), flush=True)
os._exit(0)
"""


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_mnist1d_cache_is_safe_for_concurrent_first_use(tmp_path):
    """Three processes fill an empty cache at once (as test workers or a sweep's pool do): each
    reads the arrays that generating them in memory gives, without a warning (an error here),
    and the cache holds the one complete file, no temporary one. The processes are forked from
    a warm one (tests/warm_cli.py: FIRST_USE runs before the command line would, and ends the
    process), which has imported the toolkit but built no data set."""
    cache, go = tmp_path / "cache", tmp_path / "go"
    env = {**os.environ, "TOOLKIT_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1"}
    procs = [warm_cli.start([str(go)], env=env, setup=FIRST_USE) for _ in range(3)]
    try:
        time.sleep(0.5)  # the processes poll for the go file
        go.touch()
        outputs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            p.kill()
            p.wait(timeout=30)
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err[-2000:]
    x, y, _, _ = m1d.mnist1d_arrays(400, 100, seed=11, disk_cache=False)
    digest = hashlib.sha256(x.tobytes() + y.tobytes()).hexdigest()
    assert [out.strip() for out, _ in outputs] == [digest] * 3
    assert [p.name for p in cache.iterdir()] == [m1d.cache_key(500, 11)]
    with np.load(cache / m1d.cache_key(500, 11)) as f:
        x_file, y_file = f["x"][:400], f["y"][:400]  # the file holds the 100 test samples too
    assert hashlib.sha256(x_file.tobytes() + y_file.tobytes()).hexdigest() == digest


def test_atomic_write_from_two_threads_at_once_leaves_one_whole_file(tmp_path):
    """Two writers of one target at once (threads of one process, as well as processes) write
    to temporary files of their own: the target is one writer's file, whole."""
    target = tmp_path / "t.bin"
    started = threading.Barrier(2)

    def writer(byte: bytes):
        def write(tmp: Path) -> None:
            with tmp.open("wb") as f:
                started.wait(timeout=30)  # both are writing now
                for _ in range(200):
                    f.write(byte * 1000)
                    f.flush()
                    time.sleep(0.0005)

        return lambda: atomic_write(target, write)

    threads = [threading.Thread(target=writer(b)) for b in (b"a", b"b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert target.read_bytes() in (b"a" * 200_000, b"b" * 200_000)
    assert [f.name for f in tmp_path.iterdir()] == ["t.bin"]


def test_mnist1d_cache_key_covers_package_version_and_generation_args(monkeypatch):
    """The disk cache name changes with size, seed, the mnist1d version and any generation
    argument, so stale arrays are never reused; it is stable otherwise."""
    from mnist1d import data

    key = m1d.cache_key(50, 3)
    assert key == m1d.cache_key(50, 3)
    assert len({key, m1d.cache_key(60, 3), m1d.cache_key(50, 4)}) == 3
    monkeypatch.setattr(m1d, "_package_version", lambda: "999.0")
    assert m1d.cache_key(50, 3) != key
    monkeypatch.undo()
    assert m1d.cache_key(50, 3) == key
    default_args = data.get_dataset_args

    def noisier():
        args = default_args()
        args.iid_noise_scale = 2 * args.iid_noise_scale
        return args

    monkeypatch.setattr(data, "get_dataset_args", noisier)
    assert m1d.cache_key(50, 3) != key


def _plain_sgd(w: Workload, steps: int, seed: int = 0) -> dict[str, float]:
    """Plain SGD with the workload's default lr and batch size, reshuffling every epoch."""
    model = w.make_model(seed)
    opt = torch.optim.SGD(model.parameters(), lr=w.lr)
    gen = torch.Generator().manual_seed(seed)
    order, pos = torch.randperm(w.n_train, generator=gen), 0
    for _ in range(steps):
        if pos + w.batch_size > w.n_train:
            order, pos = torch.randperm(w.n_train, generator=gen), 0
        idx = order[pos : pos + w.batch_size]
        pos += w.batch_size
        opt.zero_grad()
        w.loss(model(w.x_train[idx]), w.y_train[idx]).backward()
        opt.step()
    return w.evaluate(model)


# Chance is 10%; on 1,000 test samples its standard error is sqrt(0.1 * 0.9 / 1000) ~ 0.01, so
# each threshold is > 10 standard errors above chance. Measured after 300 steps with the defaults
# (3 seeds): MLP 0.46-0.51, CNN 0.33-0.38.
@pytest.mark.parametrize(("name", "threshold"), [("mnist1d_mlp", 0.3), ("mnist1d_cnn", 0.2)])
def test_mnist1d_trains_with_default_sgd(built, name, threshold):
    assert _plain_sgd(built[name], steps=300)["test_accuracy"] > threshold


def test_digits_split_and_training(built):
    w = built["digits_cnn"]
    assert w.x_train.shape == (1348, 1, 8, 8) and w.x_test.shape == (449, 1, 8, 8)
    assert 0.0 <= float(w.x_train.min()) and float(w.x_train.max()) <= 1.0
    again = get_workload("digits_cnn")
    assert torch.equal(again.y_test, w.y_test)
    assert not torch.equal(get_workload("digits_cnn", data_seed=1).y_test, w.y_test)
    # 449 test images: chance 10% with standard error ~0.014; measured 0.95 after 300 steps.
    assert _plain_sgd(w, steps=300)["test_accuracy"] > 0.5


@pytest.mark.parametrize(
    ("name", "kwargs", "field"),
    [
        ("mnist1d_mlp", dict(n_train=0), "n_train"),
        ("mnist1d_mlp", dict(n_train=-5), "n_train"),
        ("logreg", dict(batch_size=0), "batch_size"),
        ("mnist1d_cnn", dict(n_test=0), "n_test"),
        ("mnist1d_cnn", dict(lr=0.0), "lr"),
        ("digits_cnn", dict(batch_size=-1), "batch_size"),
        ("digits_cnn", dict(n_train=10_000), "n_train"),
        ("digits_cnn", dict(test_fraction=1.0), "test_fraction"),
        ("cifar10_resnet", dict(synthetic=True, batch_size=0), "batch_size"),
        ("cifar10_resnet", dict(synthetic=True, n_train=0), "n_train"),
        ("cifar10_resnet", {}, "root"),
        ("charlm", dict(synthetic=True, batch_size=0), "batch_size"),
        ("charlm", dict(synthetic=True, d_model=30, n_head=4), "n_head"),
        ("charlm", {}, "path"),
    ],
)
def test_bad_input_names_the_argument(name, kwargs, field):
    with pytest.raises(ValueError, match=field):
        get_workload(name, **kwargs)


# --- CIFAR-10 and the character LM ------------------------------------------------------------


def test_cifar_missing_data_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"cifar-10-batches-py.*download=True"):
        get_workload("cifar10_resnet", root=tmp_path)


def test_cifar_reads_the_python_batches(tmp_path):
    """A fake cifar-10-batches-py in Krizhevsky's pickle format (4 images per batch)."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        batch = {
            b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8),
            b"labels": rng.integers(0, 10, 4).tolist(),
        }
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    w = get_workload("cifar10_resnet", root=tmp_path, width=8)
    assert w.x_train.shape == (20, 3, 32, 32) and w.x_test.shape == (4, 3, 32, 32)
    assert w.info["synthetic"] is False
    # Standardised per channel with the training statistics.
    torch.testing.assert_close(w.x_train.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(w.x_train.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-3, rtol=0)
    with open(folder / "data_batch_1", "rb") as f:
        first = pickle.load(f)
    assert w.y_train[:4].tolist() == first[b"labels"]
    assert w.make_model(0)(w.x_test).shape == (4, 10)


def test_resnet18_has_the_standard_size():
    """Default width 64 is ResNet-18 for CIFAR (BasicBlocks [2, 2, 2, 2], 3x3 stem, no max-pool):
    11,173,962 parameters, the count of the widely used CIFAR ResNet18 (github.com/kuangliu/
    pytorch-cifar, models/resnet.py), whose BatchNorm has the same affine parameters as our
    GroupNorm. Feature maps 32 -> 4 and a 10-way output."""
    w = get_workload("cifar10_resnet", synthetic=True, n_train=1, n_test=1)
    model = w.make_model(0)
    assert sum(p.numel() for p in model.parameters()) == 11_173_962
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    with torch.no_grad():
        assert model(w.x_train).shape == (1, 10)


def test_synthetic_data_is_labelled_as_such(built):
    for name in ("cifar10_resnet", "charlm"):
        info = built[name].info
        assert info["synthetic"] is True and "synthetic" in info["dataset"]
        assert "only" in info["note"]


def test_charlm_on_a_text_file(tmp_path):
    text = "the quick brown fox jumps over the lazy dog. " * 40
    path = tmp_path / "input.txt"
    path.write_text(text, encoding="utf-8")
    w = get_workload("charlm", path=path, context=16, d_model=16, n_head=2, n_layer=1)
    vocab = w.info["vocab"]
    assert vocab == "".join(sorted(set(text))) and w.info["vocab_size"] == len(vocab)
    assert w.x_train.shape[1] == 16 and w.y_train.shape == w.x_train.shape
    # Targets are the inputs shifted by one character, and windows decode back to the text.
    assert torch.equal(w.x_train[:, 1:], w.y_train[:, :-1])
    decoded = "".join(vocab[i] for i in w.x_train[:3].flatten().tolist())
    assert decoded == text[: 3 * 16]
    out = w.make_model(0)(w.x_test[:2])
    assert out.shape == (2, 16, len(vocab))
    with pytest.raises(FileNotFoundError, match="path"):
        get_workload("charlm", path=tmp_path / "missing.txt")


def test_charlm_attention_is_causal(built):
    """Changing token t changes no logits at positions < t."""
    w = built["charlm"]
    model = w.make_model(0)
    x = w.x_train[:1].clone()
    y = x.clone()
    y[0, 7] = (y[0, 7] + 1) % w.info["vocab_size"]
    with torch.no_grad():
        a, b = model(x), model(y)
    torch.testing.assert_close(a[:, :7], b[:, :7], rtol=0, atol=0)
    assert not torch.allclose(a[:, 7:], b[:, 7:])


def test_accuracy_of_a_sequence_model_is_per_position(built):
    """evaluate() divides correct predictions by the number of targets (B * T for charlm)."""
    w = built["charlm"]
    model = w.make_model(0)
    with torch.no_grad():
        out = model(w.x_test)
    expected = float((out.argmax(-1) == w.y_test).double().mean())
    assert w.evaluate(model)["test_accuracy"] == pytest.approx(expected)


# --- registry ----------------------------------------------------------------------------------


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown workload 'nope'") as info:
        get_workload("nope")
    for name in WORKLOADS:
        assert name in str(info.value)


def test_register_round_trip_and_docstring_example(monkeypatch):
    monkeypatch.setattr(workloads, "WORKLOADS", dict(WORKLOADS))
    # The example in toolkit.workloads' docstring (copied into the README) runs as written.
    example = re.search(r"few lines::\n\n(.*?)\n\nA model", workloads.__doc__, re.S).group(1)
    namespace: dict = {}
    code = "\n".join(line[4:] for line in example.splitlines())  # drop the docstring indent
    exec(compile(code, "example", "exec"), namespace)
    w = namespace["workload"]
    assert isinstance(w, Workload) and w.n_train == 1024
    assert get_workload("xor_blobs", n_train=8).n_train == 8
    with pytest.raises(ValueError, match="already registered"):
        register_workload("xor_blobs", namespace["xor_blobs"])
    register_workload("xor_blobs", lambda: w, overwrite=True)
    assert get_workload("xor_blobs") is w
    register_workload("not_a_workload", lambda: 3)
    with pytest.raises(TypeError, match="not a Workload"):
        get_workload("not_a_workload")
    with pytest.raises(ValueError, match="name"):
        register_workload("", namespace["xor_blobs"])
    assert "xor_blobs" not in WORKLOADS  # the real registry was left alone


@pytest.mark.parametrize("name", ["logreg", "mnist1d_mlp", "digits_cnn"])
def test_targets_are_reached_by_sync_within_the_step_budget(name):
    """The targets' claim (toolkit/workloads/mnist1d.py, digits.py): Sync(8) at the default
    learning rate reaches and keeps the target within the step budget; the main metric, the
    learning-rate grid and ``reached`` follow the workload."""
    import scipy.stats as st

    from toolkit.cluster import simulate
    from toolkit.replay import train
    from toolkit.schemes import Sync

    wl = get_workload(name)
    assert wl.metric == "test_accuracy" and wl.target is not None
    assert wl.lr in wl.lr_grid and len(wl.lr_grid) == 4
    sched = simulate(Sync(8), st.expon(loc=1, scale=0.5), updates=wl.steps, seed=0)
    res = train(sched, wl, seed=0, eval_every=wl.steps // 10)
    last = res.evaluations[wl.metric].to_numpy()[-3:]
    assert all(wl.reached(v) for v in last), last
    assert not wl.reached(wl.target - 0.01)


def test_workloads_without_a_measured_target_say_so():
    wl = get_workload("quadratic")
    assert wl.metric == "test_loss" and wl.target is None and not wl.reached(0.0)
    assert get_workload("mnist1d_mlp", n_train=1000).target is None  # measured for 4000 only
    double = get_workload("logreg").with_dtype("float64")
    assert double.x_train.dtype == torch.float64 and double.y_train.dtype == torch.int64
    assert next(double.make_model(0).parameters()).dtype == torch.float64
