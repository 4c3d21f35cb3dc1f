"""Replay of shared-parameter schemes (``rule.period == 0``): update u turns version u into
version u + 1 by the scheme's update rule (:class:`toolkit.schemes.Shared`),

    d_u = sum_i w_i g_i,   g_i = grad of the mean loss of worker w_i's batch j_i at version v_i,
    x_{u+1} = x_u + step(d_u)   (SGD: -lr d_u; with momentum: PyTorch's heavy ball),

with w_i from the staleness policy (1 / number of used gradients of update u, unless stale
gradients are weighted or dropped). Dropped gradients are never computed. Gradients are evaluated
in *waves*: starting at update u0, the wave takes the following updates whose gradients all have
versions <= u0 (they exist already), computes all of them at once and then applies the updates
one by one (one fused add each). Within a wave, gradients that share (update, version) are one
batch (mean over the concatenation = mean of the per-worker means, since every batch has the
same size); distinct versions are one ``torch.func.vmap`` call over the stacked versions,
gathered from a :class:`~toolkit.replay.batched.VersionStore`. Batch indices of the used rows
are drawn and uploaded in large chunks.

The store holds only the versions still needed: the waves are fixed in advance, so one numpy
pass over the used rows' ``version`` column gives each version's last reader (the last wave with
a gradient at it); a version is released once that wave's gradients are computed, and update u
overwrites version u in place when no later wave reads it. The store's capacity is the most
versions live at once over these lifetimes (:func:`~toolkit.replay.batched.max_live`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from toolkit.checks import ConfigError
from toolkit.cluster.schedule import Schedule
from toolkit.limits import check_memory
from toolkit.replay.batched import VersionStore, batches, max_live
from toolkit.replay.recorder import Recorder
from toolkit.schemes import Shared, Staleness

__all__ = ["replay_shared"]


class _RowIndices:
    """Batch indices of the (sorted) used gradient rows, drawn from the DataStream and
    uploaded to the device in chunks of about ``chunk_samples`` indices, not once per wave."""

    def __init__(self, stream, wrk, bat, device, chunk_samples: int = 1 << 22) -> None:
        self.stream, self.wrk, self.bat, self.device = stream, wrk, bat, device
        self.rows = max(1, chunk_samples // stream.batch_size)
        self.lo = self.hi = 0
        self.idx: torch.Tensor | None = None

    def get(self, g0: int, g1: int) -> torch.Tensor:
        """Indices of rows g0..g1-1, [g1 - g0, batch_size] on the device."""
        if self.idx is None or g0 < self.lo or g1 > self.hi:
            self.lo, self.hi = g0, max(g1, min(len(self.wrk), g0 + self.rows))
            sl = slice(self.lo, self.hi)
            self.idx = self.stream.many(self.wrk[sl], self.bat[sl]).to(self.device)
        return self.idx[g0 - self.lo : g1 - self.lo]


@dataclass
class _Plan:
    """What a shared replay computes, fixed before any gradient is: the kept gradients sorted by
    (update, version, worker, batch) and their weights, each update's row values, the waves and
    the versions' lifetimes."""

    upd: np.ndarray
    ver: np.ndarray
    wrk: np.ndarray
    bat: np.ndarray
    weight: np.ndarray
    starts: np.ndarray  # gradients of update u: starts[u] .. starts[u + 1] - 1
    count: np.ndarray  # kept gradients per update
    times: np.ndarray  # per update: wall-clock time, mean staleness, bytes moved so far
    mean_stal: np.ndarray
    cum_bytes: np.ndarray
    wave_starts: np.ndarray
    in_place: np.ndarray  # update u overwrites version u
    by_grad: np.ndarray  # versions released after a wave's gradients, in order of release
    grad_bounds: np.ndarray  # by_grad[grad_bounds[u0] : grad_bounds[u0 + 1]]: wave u0's
    capacity: int


def _plan(
    schedule: Schedule, staleness: Staleness, nbytes: float | None, max_wave: int, max_grads: int
) -> _Plan:
    frame = schedule.frame
    used = (frame["kind"].to_numpy() == "grad") & frame["used"].to_numpy()
    upd, ver, wrk, bat, tim = (
        frame[c].to_numpy()[used] for c in ("update", "version", "worker", "batch", "time")
    )
    if (ver < 0).any() or (ver > upd).any():
        raise ConfigError("schedule", "schedule: used gradients need 0 <= version <= update")
    if (bat < 0).any():
        raise ConfigError("schedule", "schedule: gradient rows need batch >= 0")
    n_upd = int(upd.max()) + 1
    times = np.full(n_upd, -np.inf)
    np.maximum.at(times, upd, tim)
    times = np.maximum.accumulate(times)
    times[~np.isfinite(times)] = np.nan
    if nbytes is None:
        cum_bytes = np.full(n_upd, np.nan)
    else:
        cum_bytes = 2.0 * nbytes * np.cumsum(np.bincount(upd, minlength=n_upd))
    stal = upd - ver
    keep, weight, count = staleness.weights(upd, stal, n_upd)
    upd, ver, wrk, bat, stal, weight = (a[keep] for a in (upd, ver, wrk, bat, stal, weight))
    order = np.lexsort((bat, wrk, ver, upd))
    upd, ver, wrk, bat, stal, weight = (a[order] for a in (upd, ver, wrk, bat, stal, weight))
    maxver = np.full(n_upd, -1)
    np.maximum.at(maxver, upd, ver)
    mean_stal = np.bincount(upd, weights=stal, minlength=n_upd) / np.maximum(count, 1)
    mean_stal[count == 0] = np.nan
    wave_starts = _waves(count, maxver, min(max_wave, n_upd), max_grads)
    born, last = _lifetimes(upd, ver, wave_starts, n_upd)
    # version u is overwritten by u + 1 when nothing reads it after its own update; an older
    # version is released once the gradients of its last wave (start u0, tick 2 u0) are done
    in_place = last[:-1] == 2 * np.arange(n_upd)
    by_grad = np.flatnonzero(~in_place)  # the final version n_upd is never released
    by_grad = by_grad[np.argsort(last[by_grad], kind="stable")]
    grad_bounds = np.searchsorted(last[by_grad], 2 * np.arange(n_upd + 1))
    starts = np.searchsorted(upd, np.arange(n_upd + 1))
    return _Plan(
        upd,
        ver,
        wrk,
        bat,
        weight,
        starts,
        count,
        times,
        mean_stal,
        cum_bytes,
        wave_starts,
        in_place,
        by_grad,
        grad_bounds,
        max_live(born, last),
    )


def replay_shared(
    schedule: Schedule,
    rules: Shared,
    fm,
    stream,
    data: dict,
    rec: Recorder,
    *,
    nbytes: float | None,
    max_wave: int,
    max_samples: int,
    max_rows: int,
    safe_point=None,
    resume: dict | None = None,
) -> torch.Tensor:
    """Replay a shared-parameter Schedule (module docstring); rows go to ``rec``; returns the
    newest parameters (where training stopped). After every wave ``safe_point(rows,
    snapshot)`` (when given) may take ``snapshot()``, everything needed to continue from there,
    which ``resume`` takes back: the versions still needed, the optimizer state and the rows."""
    per_grad = stream.batch_size
    # direction [nu, P] gets half of the max_bytes budget, each vmapped call the other half
    plan = _plan(
        schedule,
        rules.staleness,
        nbytes,
        min(max_wave, max(1, max_rows // 2)),
        max_samples // per_grad,
    )
    dev = rec.loss_dev.device
    flat0 = fm.flat()
    wave_max = int(np.diff(plan.wave_starts).max())
    row = fm.size * flat0.element_size()
    what = f"replaying it, which holds {plan.capacity} parameter versions of {fm.size} at once,"
    check_memory("schedule", what, (plan.capacity + wave_max) * row)
    buf = VersionStore(flat0, plan.capacity)
    opt = rules.optimizer
    opt_state = opt.init(flat0)
    first = 0
    if resume is not None:
        first = int(resume["next"])
        if first not in set(plan.wave_starts.tolist()):
            raise ValueError("resume: the checkpoint does not match this Schedule's waves")
        buf.restore(resume["versions"])
        if resume["opt"] is not None:
            opt_state = resume["opt"].to(device=dev, dtype=flat0.dtype)
    params = buf[first]
    per_call_rows = max(1, max_rows // 4)  # gathered versions + their gradients, [k, P] each
    dir_buf = torch.empty((wave_max, fm.size), dtype=flat0.dtype, device=dev)
    cnt_div = torch.as_tensor(np.maximum(plan.count, 1), dtype=torch.float64, device=dev)
    indices = _RowIndices(stream, plan.wrk, plan.bat, dev)
    bounds = plan.wave_starts
    for u0, u1 in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        if u0 < first:
            continue
        g0, g1 = plan.starts[u0], plan.starts[u1]
        direction = dir_buf[: u1 - u0].zero_()
        loss_sum = rec.loss_dev[u0:u1].zero_()  # rows are updates: row u's slot is u
        if g1 > g0:
            _wave_gradients(
                fm,
                data,
                buf,
                indices.get(g0, g1),
                plan.upd[g0:g1] - u0,
                plan.ver[g0:g1],
                plan.weight[g0:g1],
                direction,
                loss_sum,
                per_call_rows,
                max_samples // per_grad,
            )
        for v in plan.by_grad[plan.grad_bounds[u0] : plan.grad_bounds[u0 + 1]].tolist():
            buf.release(v)  # its last reader was in this wave
        loss_sum.div_(cnt_div[u0:u1])
        rows = zip(
            range(u0, u1),
            plan.in_place[u0:u1].tolist(),
            plan.times[u0:u1].tolist(),
            plan.mean_stal[u0:u1].tolist(),
            plan.cum_bytes[u0:u1].tolist(),
            (plan.count[u0:u1] > 0).tolist(),
            direction,
            strict=False,  # direction has wave_max rows; the wave may be shorter
        )
        for u, in_place, t, stal, sent, has_loss, d in rows:
            cur = buf[u]
            nxt = buf.push(in_place=in_place)  # elementwise: nxt may alias cur
            step, opt_state = opt.update(d, opt_state)
            torch.add(cur, step.direction, alpha=step.scale, out=nxt)
            params = nxt
            if not rec.add(u, t, stal, sent, nxt, has_loss=has_loss):
                return params
        if safe_point is not None:

            def snapshot(u1=u1, opt_state=opt_state) -> dict:
                opt = None if opt_state is None else opt_state.detach().cpu().clone()
                return {"path": "shared", "next": u1, "versions": buf.state(), "opt": opt}

            safe_point(u1, snapshot)
    return params


def _waves(count: np.ndarray, maxver: np.ndarray, max_wave: int, max_grads: int) -> np.ndarray:
    """Wave boundaries u_0 = 0 < u_1 < ... = n_upd: the wave from u0 takes the following
    updates while each reads only versions <= u0 (``maxver``), at most ``max_wave`` updates and
    (beyond the first update) at most ``max_grads`` gradients (``count`` per update)."""
    n_upd = len(count)
    bounds = [0]
    u0 = 0
    while u0 < n_upd:
        u1, ng = u0 + 1, count[u0]
        while (
            u1 < n_upd and maxver[u1] <= u0 and u1 - u0 < max_wave and ng + count[u1] <= max_grads
        ):
            ng += count[u1]
            u1 += 1
        bounds.append(u1)
        u0 = u1
    return np.asarray(bounds, dtype=np.int64)


def _lifetimes(
    upd: np.ndarray, ver: np.ndarray, wave_starts: np.ndarray, n_upd: int
) -> tuple[np.ndarray, np.ndarray]:
    """Ticks at which versions 0..n_upd are written and last read, in replay's order.

    Tick 2u is the gradient pass of the wave starting at update u (every gradient of the wave
    reads its version then), tick 2u + 1 applies update u: it reads version u and writes
    version u + 1, in place of u when no later wave reads u (an elementwise axpy may). So
    version v is held from tick 2v - 1 through tick max(2v, 2 s), s the start of the last wave
    with a gradient at v (s >= v, since a wave starting at s reads versions <= s); the final
    version n_upd lives to the end, tick 2 n_upd. Returns (born, last), [n_upd + 1] each.
    """
    sizes = np.diff(wave_starts)
    start_of = np.repeat(wave_starts[:-1], sizes)  # wave start of every update
    versions = np.arange(n_upd + 1, dtype=np.int64)
    last = 2 * versions
    np.maximum.at(last, ver, 2 * start_of[upd])
    return 2 * versions - 1, last


def _wave_gradients(
    fm, data, buf, idx, rel_upd, ver, weight, direction, loss_sum, max_groups, max_grads
):
    """Gradients of one wave, accumulated as direction[u] += w_i g_i and loss_sum[u] += loss_i
    (both on the device). ``idx`` [k, B] are the rows' batch indices.

    Gradients sharing (update, version) are one batch; when all such groups have the same size
    they are vmapped as groups, else gradient by gradient (every batch has the same size, so the
    group mean equals the mean of its members' means). A vmapped call takes at most
    ``max_groups`` groups (each one [P] row of the gathered versions and of the gradients) and
    ``max_grads`` gradients (samples / batch size), and at least one group.
    """
    if ver[0] == ver[-1] and rel_upd[0] == rel_upd[-1]:  # rows are sorted: one group
        x, y = batches(data, idx.reshape(-1))
        g, loss = fm.grad(buf[int(ver[0])], x, y)
        r = int(rel_upd[0])
        direction[r].add_(g, alpha=float(weight.sum()))
        loss_sum[r] += loss.double() * len(rel_upd)
        return
    key_change = np.flatnonzero((np.diff(rel_upd) != 0) | (np.diff(ver) != 0)) + 1
    bounds = np.concatenate([[0], key_change, [len(rel_upd)]])
    sizes = np.diff(bounds)
    bsz = idx.shape[1]
    c = int(sizes[0]) if np.all(sizes == sizes[0]) else 1
    first = np.arange(0, len(rel_upd), c)
    item_upd, item_ver = rel_upd[first], ver[first]
    item_w = np.add.reduceat(weight, first)
    per_call = max(1, min(max_groups, max_grads // c))
    dev = direction.device
    for s in range(0, len(first), per_call):
        e = min(len(first), s + per_call)
        x, y = batches(data, idx[s * c : e * c].reshape(e - s, c * bsz))
        g, loss = fm.grads(buf.gather(item_ver[s:e]), x, y)
        w = torch.as_tensor(item_w[s:e], dtype=g.dtype, device=dev)
        _segment_add(direction, item_upd[s:e], g.mul_(w[:, None]))
        rows = torch.as_tensor(item_upd[s:e], device=dev)
        loss_sum.index_add_(0, rows, loss.double() * c)


def _segment_add(out: torch.Tensor, rows: np.ndarray, values: torch.Tensor) -> None:
    """out[rows[i]] += values[i] for sorted ``rows``, in a fixed order (index_add_ with repeated
    indices is nondeterministic on CUDA)."""
    cut = np.flatnonzero(np.diff(rows)) + 1
    if rows[-1] - rows[0] == len(rows) - 1 and len(cut) == len(rows) - 1:  # consecutive rows
        out[int(rows[0]) : int(rows[-1]) + 1] += values
        return
    if len(cut) == len(rows) - 1:  # all rows distinct
        out[torch.as_tensor(rows, device=out.device)] += values
        return
    for a, b in zip(np.r_[0, cut], np.r_[cut, len(rows)], strict=True):
        out[int(rows[a])] += values[a:b].sum(0)
