"""The rows of a replay run: train losses kept on the device, evaluations at check points,
checkpoints, and the divergence check."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

__all__ = ["CHECK_EVERY", "Recorder"]

# Rows between two host reads of the device-side train losses (divergence checks).
CHECK_EVERY = 256


class Recorder:
    """Collects rows, runs evaluations, checkpoints, and detects divergence.

    Train losses stay on the device (``loss_dev``, float64, one slot per row, written by the
    replay loops) and are copied to the host in one transfer at every evaluation point and
    every ``check_every`` rows, so an update costs no host<->device synchronisation. Divergence
    (a non-finite train loss) is therefore detected at those points: the run stops at the first
    check after it, keeping every row up to the check (their losses are NaN/inf).
    """

    def __init__(
        self, n_rows, eval_every, evaluate, checkpoint, bar, device, check_every=CHECK_EVERY
    ) -> None:
        self.n_rows = n_rows
        self.eval_every = eval_every
        self.evaluate = evaluate
        self.checkpoint = checkpoint
        self.bar = bar
        self.check_every = check_every
        self.loss_dev = torch.full((n_rows,), math.nan, dtype=torch.float64, device=device)
        self.loss = np.full(n_rows, math.nan)
        self.has_loss = np.zeros(n_rows, dtype=bool)
        self.synced = 0
        self.rows: list[tuple] = []
        self.test: dict[int, dict] = {}
        self.diverged = ""

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
            self.checkpoint()
        return True

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
