"""The rows of a replay run: train losses kept on the device, evaluations at check points, the
divergence check, and an optional stopping rule asked after every evaluation."""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

__all__ = ["BLOWUP", "CHECK_EVERY", "Recorder"]

# Rows between two host reads of the device-side train losses (divergence checks).
CHECK_EVERY = 256
# A run whose last train loss is above BLOWUP x max(first row's loss, 1) diverged, as one with a
# non-finite loss did: a learning rate far past the stable range can keep the loss finite (e.g.
# 1e17) without training. Judged at the end, not on the way: near the stability edge a run can
# pass through a transient of 1e5 x its first loss and still converge (non-normal growth of the
# delayed iteration, seen on the quadratic with dropped stale gradients).
BLOWUP = 1e4


class Recorder:
    """Collects rows, runs evaluations, and detects divergence.

    Train losses stay on the device (``loss_dev``, float64, one slot per row, written by the
    replay loops) and are copied to the host in one transfer at every evaluation point and
    every ``check_every`` rows, so an update costs no host<->device synchronisation. Divergence
    (a non-finite train loss) is therefore detected at those points: the run stops at the first
    check after it, keeping every row up to the check; :meth:`finish` also calls a run diverged
    whose last train loss is above :data:`BLOWUP` times max(the first row's, 1). ``stop`` (the
    evaluations so far, oldest first -> a reason or None) ends the run at the first evaluation
    where it gives a reason (``stopped``).
    :meth:`state` and :meth:`restore` carry the rows across a resume.
    """

    def __init__(
        self,
        n_rows: int,
        eval_every: int,
        evaluate: Callable[[torch.Tensor], dict],
        bar,
        device: torch.device,
        check_every: int = CHECK_EVERY,
        stop: Callable[[list[dict]], str | None] | None = None,
    ) -> None:
        self.n_rows = n_rows
        self.eval_every = eval_every
        self.evaluate = evaluate
        self.bar = bar
        self.check_every = check_every
        self.stop = stop
        self.loss_dev = torch.full((n_rows,), math.nan, dtype=torch.float64, device=device)
        self.loss = np.full(n_rows, math.nan)
        self.has_loss = np.zeros(n_rows, dtype=bool)
        self.synced = 0
        self.rows: list[tuple] = []
        self.test: dict[int, dict] = {}
        self.diverged = ""
        self.stopped = ""

    def add(
        self,
        update: int,
        time: float,
        staleness: float,
        nbytes: float,
        flat: torch.Tensor,
        has_loss: bool = True,
    ) -> bool:
        """Record one row (its train loss is ``loss_dev[row]``); evaluate at evaluation points;
        False when training must stop.

        ``has_loss`` is False for a row that computed no gradient (its loss is NaN by design).
        """
        self.has_loss[len(self.rows)] = has_loss
        self.rows.append((update, time, staleness, nbytes))
        if self.bar is not None:
            self.bar.update(1)
        done = len(self.rows)
        at_eval = done % self.eval_every == 0 or done == self.n_rows
        if (at_eval or done - self.synced >= self.check_every) and not self.sync():
            return False
        if at_eval:
            res = self.evaluate(flat)
            self.test[done - 1] = res
            if not math.isfinite(res["test_loss"]):
                self.diverged = f"test loss became {res['test_loss']} at update {update}"
                return False
            if self.stop is not None:
                why = self.stop([self.test[i] for i in sorted(self.test)])
                if why:
                    self.stopped = f"{why} at update {update}"
                    return False
        return True

    def reason(self) -> str:
        """Why the run ended: ``"diverged"``, the stopping rule's reason (its first word:
        ``"target"``, ``"plateau"``) or ``"budget"`` (every row of the Schedule)."""
        if self.diverged:
            return "diverged"
        if self.stopped:
            return re.match(r"\w+", self.stopped).group()
        return "budget"

    def sync(self) -> bool:
        """Copy the new rows' train losses to the host; False at a non-finite one."""
        a, b = self.synced, len(self.rows)
        if b == a:
            return True
        vals = self.loss_dev[a:b].cpu().numpy()
        has = self.has_loss[a:b]
        self.loss[a:b] = np.where(has, vals, math.nan)
        self.synced = b
        bad = np.flatnonzero(has & ~np.isfinite(vals))
        if len(bad) and not self.diverged:
            i = int(bad[0])
            self.diverged = f"train loss became {vals[i]} at update {self.rows[a + i][0]}"
            return False
        return True

    def finish(self) -> None:
        """At the end of training: a run whose last train loss is above BLOWUP x max(first, 1)
        diverged (module constant)."""
        self.sync()
        r = len(self.rows)
        loss = self.loss[:r][self.has_loss[:r]]
        if self.diverged or len(loss) < 2:
            return
        limit = BLOWUP * max(abs(float(loss[0])), 1.0)
        if abs(float(loss[-1])) > limit:
            self.diverged = (
                f"train loss ended at {loss[-1]:.4g}, above {BLOWUP:g} x max(first loss, 1) = "
                f"{limit:.4g}"
            )

    def state(self) -> dict:
        """The rows so far, as tensors and plain values (a checkpoint's ``rec`` entry)."""
        self.sync()
        r = len(self.rows)
        keys = sorted(self.test)
        f64 = torch.float64
        return {
            "rows": torch.tensor(self.rows, dtype=f64).reshape(r, 4),
            "loss": torch.from_numpy(self.loss[:r].copy()),
            "has_loss": torch.from_numpy(self.has_loss[:r].copy()),
            "test_rows": torch.tensor(keys, dtype=torch.int64),
            "test_loss": torch.tensor([self.test[i]["test_loss"] for i in keys], dtype=f64),
            "test_accuracy": torch.tensor(
                [self.test[i].get("test_accuracy", math.nan) for i in keys], dtype=f64
            ),
            "diverged": self.diverged,
        }

    def restore(self, state: dict) -> None:
        """Continue from :meth:`state`: the same rows, losses and evaluations."""
        rows = state["rows"].numpy()
        r = len(rows)
        self.rows = [(int(u), float(t), float(s), float(b)) for u, t, s, b in rows]
        self.loss[:r] = state["loss"].numpy()
        self.has_loss[:r] = state["has_loss"].numpy()
        self.loss_dev[:r] = torch.as_tensor(self.loss[:r], device=self.loss_dev.device)
        self.synced = r
        acc = state["test_accuracy"].numpy()
        self.test = {}
        for i, row in enumerate(state["test_rows"].tolist()):
            res = {"test_loss": float(state["test_loss"][i])}
            if not math.isnan(acc[i]):
                res["test_accuracy"] = float(acc[i])
            self.test[row] = res
        self.diverged = state["diverged"]
        if self.bar is not None:
            self.bar.update(r)

    def frame(self) -> pd.DataFrame:
        self.sync()
        rows = np.array(self.rows, dtype=np.float64).reshape(-1, 4)
        frame = pd.DataFrame(
            {
                "update": rows[:, 0].astype(np.int64),
                "time": rows[:, 1],
                "train_loss": self.loss[: len(rows)],
                "staleness": rows[:, 2],
                "bytes": rows[:, 3],
            }
        )
        tl = np.full(len(frame), np.nan)
        ta = np.full(len(frame), np.nan)
        for i, res in self.test.items():
            tl[i] = res["test_loss"]
            ta[i] = res.get("test_accuracy", np.nan)
        frame["test_loss"] = tl
        frame["test_accuracy"] = ta
        return frame
