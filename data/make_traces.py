"""Write the example step-time traces of data/: a synthetic stand-in for measured traces until
the real backend records one.

Reproduce (from the repository root)::

    .venv/bin/python data/make_traces.py

Model: 8 workers x 500 steps of ``toolkit.models.Markov(lognorm(0.25, scale=1.0), slowdown=4,
p_slow=0.02, p_recover=0.3)``, seed 0: lognormal step times around 1 s with time-correlated slow
spells (4x slower, about 3 steps long, 6 % of the time). Writes

* ``data/trace_8workers.csv``: one column per worker (``w0`` .. ``w7``), rows = steps, for
  ``toolkit.models.Trace.from_csv`` (``--dist 'Trace("data/trace_8workers.csv")'``);
* ``data/step_times.csv``: the same times in one ``step_time`` column (with ``worker`` and
  ``step``), for ``toolkit.models.Empirical.from_csv`` (``--dist data/step_times.csv``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from toolkit.models import Markov

WORKERS, STEPS, SEED = 8, 500, 0


def traces() -> tuple[pd.DataFrame, pd.DataFrame]:
    model = Markov(stats.lognorm(0.25, scale=1.0), slowdown=4.0, p_slow=0.02, p_recover=0.3)
    times = np.round(model.sample(WORKERS, STEPS, seed=SEED), 6)  # (workers, steps)
    wide = pd.DataFrame({f"w{w}": times[w] for w in range(WORKERS)})
    long = pd.DataFrame(
        {
            "worker": np.repeat(np.arange(WORKERS), STEPS),
            "step": np.tile(np.arange(STEPS), WORKERS),
            "step_time": times.ravel(),
        }
    )
    return wide, long


def main(out: Path) -> None:
    wide, long = traces()
    wide.to_csv(out / "trace_8workers.csv", index=False)
    long.to_csv(out / "step_times.csv", index=False)
    print(f"wrote {out / 'trace_8workers.csv'} and {out / 'step_times.csv'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent)
