"""Replay of replica schemes (``rule.period > 0``: EASGD, EAMSGD, LocalSGD, DiLoCo).

Stacked replicas [n, P] and a centre follow the scheme's update rule
(:class:`toolkit.schemes.Replicated`: a local step and an exchange). Every worker runs its local
steps up to its next exchange, all workers that can step are stepped together in one vmapped call,
then centre updates are applied in the Schedule's order. An exchange row with version t happens
before the worker's local step t (after t local steps), as in Zhang et al.'s Algorithm 1; the
exchange rows sharing an ``update`` index are one centre update. One Results row per centre
update; local steps after a worker's last exchange affect no row and are not computed.
"""

from __future__ import annotations

import numpy as np
import torch

from toolkit.checks import ConfigError
from toolkit.cluster.schedule import Schedule
from toolkit.limits import check_memory
from toolkit.replay.batched import batches
from toolkit.replay.recorder import Recorder
from toolkit.schemes import Replicated
from toolkit.schemes.updates import Step

__all__ = ["ReplicaState", "replay_replicas"]


class ReplicaState:
    """The tensors of a replica scheme and the scheme's rule applied to them: replicas ``x``
    [n, P], the centre [P], the local rule's state (stacked per worker) and the exchange's
    state. The rule's functions are pure; this class gathers the rows of the workers taking part
    and scatters the results back. The gradient points differ from the replicas only after an
    elastic exchange (EASGD's next gradient is taken at the pre-exchange value), so ``points``
    is allocated only once an exchange returns points other than the new replicas, and a row of
    it is not rewritten when it already holds that value (``pts_current``)."""

    def __init__(self, rules: Replicated, start: torch.Tensor, n: int) -> None:
        self.rules = rules
        self.x = start.unsqueeze(0).repeat(n, 1)
        self.pts: torch.Tensor | None = None
        self.pts_current = np.ones(n, dtype=bool)  # pts[w] holds x[w] (kept after local steps)
        self.local = rules.local.init(self.x)
        self.centre = start.clone()
        self.exchange_state = rules.exchange.init(self.centre)

    def points(self, idx: torch.Tensor) -> torch.Tensor:
        """Where the next local gradient of workers ``idx`` is evaluated, stacked [k, P]."""
        base = (self.x if self.pts is None else self.pts).index_select(0, idx)
        local = None if self.local is None else self.local.index_select(0, idx)
        return self.rules.local.point(base, local)

    def local_step(self, idx: torch.Tensor, grads: torch.Tensor, rows=None) -> None:
        """Apply the local gradients ``grads`` [k, P] of workers ``idx`` (``rows``: the same
        indices as a numpy array, to spare a device read)."""
        local = None if self.local is None else self.local.index_select(0, idx)
        step, local = self.rules.local.update(grads, local)
        if local is not None:
            self.local.index_copy_(0, idx, local)
        self.x.index_add_(0, idx, step.direction, alpha=step.scale)
        if self.pts is not None:
            self.pts.index_copy_(0, idx, self.x.index_select(0, idx))
        self.pts_current[idx.cpu().numpy() if rows is None else rows] = True

    def state(self) -> dict:
        """The tensors (on the CPU) and rule states, for a checkpoint."""

        def cpu(x):
            return None if x is None else x.detach().cpu().clone()

        return {
            "x": cpu(self.x),
            "pts": cpu(self.pts),
            "local": cpu(self.local),
            "centre": cpu(self.centre),
            "exchange": cpu(self.exchange_state),
            "pts_current": torch.from_numpy(self.pts_current.copy()),
        }

    def restore(self, state: dict) -> None:
        """Continue from :meth:`state`."""

        def like(x):
            return None if x is None else x.to(device=self.x.device, dtype=self.x.dtype)

        self.x = like(state["x"])
        self.pts = like(state["pts"])
        self.local = like(state["local"])
        self.centre = like(state["centre"])
        self.exchange_state = like(state["exchange"])
        self.pts_current = state["pts_current"].numpy().copy()

    def exchange(self, idx: torch.Tensor, rows=None) -> None:
        """One centre update in which workers ``idx`` (``rows`` as numpy) meet the centre."""
        xs = self.x.index_select(0, idx)
        new, pts, self.centre, self.exchange_state = self.rules.exchange.apply(
            xs, self.centre, self.exchange_state
        )
        rows = idx.cpu().numpy() if rows is None else rows
        if pts is not new and not (
            pts is xs and self.pts is not None and self.pts_current[rows].all()
        ):
            if self.pts is None:  # the points part from the replicas from now on
                self.pts = self.x.clone()
            self.pts.index_copy_(
                0, idx, pts
            )  # (points that are the old replicas are there already)
        if isinstance(new, Step):  # a move of the replicas, applied in place
            self.x.index_add_(0, idx, new.direction, alpha=new.scale)
        else:
            self.x.index_copy_(0, idx, new)
        self.pts_current[rows] = pts is new
        if pts is new and self.pts is not None:
            self.pts.index_copy_(0, idx, new)


def _local_steps(frame, n: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per worker: the batch and the ``used`` flag of its local steps t = 0, 1, ..."""
    g = frame[frame["kind"].to_numpy() == "grad"]
    steps_batch, steps_used = [], []
    for w in range(n):
        gw = g[g["worker"].to_numpy() == w].sort_values("update")
        t = gw["update"].to_numpy()
        if not np.array_equal(t, np.arange(len(t))):
            raise ConfigError(
                "schedule", f"schedule: worker {w}'s local steps must be numbered 0, 1, 2, ..."
            )
        steps_batch.append(gw["batch"].to_numpy())
        steps_used.append(gw["used"].to_numpy())
    return steps_batch, steps_used


def _exchanges(frame, n: int, steps: list[np.ndarray]):
    """Exchange rows in centre order: (worker, version, time, bounds of each centre update,
    each worker's exchange versions in order)."""
    ex = frame[frame["kind"].to_numpy() == "exchange"].sort_values(["update", "worker"])
    k_all = ex["update"].to_numpy()
    _, k_start = np.unique(k_all, return_index=True)
    bounds = np.append(k_start, len(k_all))
    ex_w, ex_v, ex_t = (ex[c].to_numpy() for c in ("worker", "version", "time"))
    queue = [ex_v[ex_w == w] for w in range(n)]
    for w, q in enumerate(queue):
        if len(q) and (np.any(np.diff(q) < 0) or q[-1] > len(steps[w]) or q[0] < 0):
            raise ConfigError(
                "schedule",
                f"schedule: worker {w}'s exchange versions must be nondecreasing and within its "
                "local steps",
            )
    return ex_w, ex_t, bounds, queue


def replay_replicas(
    schedule: Schedule,
    rules: Replicated,
    n: int,
    fm,
    stream,
    data: dict,
    rec: Recorder,
    *,
    nbytes: float | None,
    max_samples: int,
    max_rows: int,
    safe_point=None,
    resume: dict | None = None,
) -> torch.Tensor:
    """Replay a replica Schedule (module docstring); one row per centre update goes to ``rec``;
    returns the centre (where training stopped). After every centre update ``safe_point(rows,
    snapshot)`` (when given) may take ``snapshot()``: the replicas, centre, rule states and
    positions, which ``resume`` takes back."""
    frame = schedule.frame
    steps_batch, steps_used = _local_steps(frame, n)
    ex_w, ex_t, bounds, queue = _exchanges(frame, n, steps_batch)
    dev = rec.loss_dev.device
    qpos = np.zeros(n, dtype=np.int64)
    limit = np.array([q[0] if len(q) else 0 for q in queue], dtype=np.int64)
    pos = np.zeros(n, dtype=np.int64)
    loss_acc = torch.zeros(n, dtype=torch.float64, device=dev)  # per worker, on the device
    loss_cnt = np.zeros(n, dtype=np.int64)
    flat0 = fm.flat()
    copies = 3 + (rules.local.momentum > 0)  # replicas, gradient points, gradients, velocities
    what = f"replaying {n} replicas of {fm.size} parameters"
    check_memory("n", what, copies * n * fm.size * flat0.element_size())
    reps = ReplicaState(rules, flat0, n)
    first = 0
    if resume is not None:
        first = int(resume["k"])
        reps.restore(resume["replicas"])
        pos, qpos, limit, loss_cnt = (
            resume[k].numpy().copy() for k in ("pos", "qpos", "limit", "cnt")
        )
        loss_acc = resume["acc"].to(dev)
    # points + gradients (+ temporaries of the momentum rule), [k, P] each, within max_bytes
    per_call = max(1, min(max_samples // stream.batch_size, max_rows // 4))
    for k_i in range(first, len(bounds) - 1):
        ws = ex_w[bounds[k_i] : bounds[k_i + 1]].copy()
        while True:  # every worker to its next exchange, all steppable workers in one call
            active = np.flatnonzero(pos < limit)
            if len(active) == 0:
                break
            use = np.array([steps_used[w][t] for w, t in zip(active, pos[active], strict=True)])
            act, st = active[use], pos[active][use]
            for c0 in range(0, len(act), per_call):  # workers are independent: chunks are exact
                ca, cs = act[c0 : c0 + per_call], st[c0 : c0 + per_call]
                bts = np.array([steps_batch[w][t] for w, t in zip(ca, cs, strict=True)])
                x, y = batches(data, stream.many(ca, bts))
                idx_t = torch.as_tensor(ca, device=dev)
                grads, losses = fm.grads(reps.points(idx_t), x, y)
                reps.local_step(idx_t, grads, ca)
                loss_acc.index_add_(0, idx_t, losses.double())  # distinct workers
                loss_cnt[ca] += 1
            pos[active] += 1
        ws_t = torch.as_tensor(ws, device=dev)
        reps.exchange(ws_t, ws)
        cnt = int(loss_cnt[ws].sum())
        if cnt:
            rec.loss_dev[k_i] = loss_acc.index_select(0, ws_t).sum() / cnt
        loss_acc.index_fill_(0, ws_t, 0.0)
        loss_cnt[ws] = 0
        for w in ws:
            qpos[w] += 1
            limit[w] = queue[w][qpos[w]] if qpos[w] < len(queue[w]) else pos[w]
        row_bytes = float("nan") if nbytes is None else 2.0 * nbytes * float(bounds[k_i + 1])
        t = float(ex_t[bounds[k_i] : bounds[k_i + 1]].max())
        if not rec.add(k_i, t, 0.0, row_bytes, reps.centre, has_loss=bool(cnt)):
            return reps.centre
        if safe_point is not None:

            def snapshot(k=k_i + 1) -> dict:
                arrays = {"pos": pos, "qpos": qpos, "limit": limit, "cnt": loss_cnt}
                return {
                    "path": "replicas",
                    "k": k,
                    "replicas": reps.state(),
                    "acc": loss_acc.cpu().clone(),
                    **{key: torch.from_numpy(a.copy()) for key, a in arrays.items()},
                }

            safe_point(k_i + 1, snapshot)
    return reps.centre
