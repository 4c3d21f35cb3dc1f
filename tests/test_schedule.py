"""Schedule: the column contract and lossless Parquet / CSV round trips."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from toolkit.cluster import COLUMNS, Schedule, simulate
from toolkit.cluster.schedule import KINDS, RowKind, make_frame
from toolkit.models import Empirical, Failures, PerWorker
from toolkit.schemes import EASGD, Backup, KBatchAsync, Sync


def _schedules():
    d = stats.lognorm(0.6)
    yield simulate(Backup(4, 2), d, updates=50, seed=1)
    yield simulate(KBatchAsync(5, 2), d, updates=50, seed=2)
    yield simulate(EASGD(3, 4, 0.2, synchronous=False), d, updates=20, seed=3)
    f = Failures({0: 2.5})
    yield simulate(Sync(2), PerWorker([Empirical([1.0])] * 2), updates=10, failures=f)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_round_trip_is_lossless(tmp_path, suffix):
    for i, sched in enumerate(_schedules()):
        path = sched.save(tmp_path / f"s{i}{suffix}")
        back = Schedule.load(path)
        pd.testing.assert_frame_equal(back.frame, sched.frame, check_exact=True)
        assert back.meta == sched.meta
        assert (back.status, back.message) == (sched.status, sched.message)
    assert Schedule.load(tmp_path / f"s3{suffix}").status == "stalled"


def test_columns_and_dtypes():
    for sched in _schedules():
        assert list(sched.frame.columns) == list(COLUMNS)
        assert {c: str(t) for c, t in sched.frame.dtypes.items()} == COLUMNS
        assert set(sched.frame["kind"]) <= {"grad", "exchange"}
        used = sched.used
        if (sched.frame["kind"] == "exchange").any():  # replica schemes: no staleness
            assert (sched.frame["staleness"] == 0).all()
        else:
            assert (used["staleness"] == used["update"] - used["version"]).all()


def test_row_kinds_are_the_kind_columns_codes():
    """One RowKind: its values are the categorical's codes and its names its categories, for
    the clock's rows and for rows given as codes (the real backend's)."""
    assert KINDS == ("grad", "exchange") and [int(k) for k in RowKind] == [0, 1]
    for sched in _schedules():
        kind = sched.frame["kind"]
        assert list(kind.cat.categories) == [k.name.lower() for k in RowKind]
        codes = kind.cat.codes.to_numpy()
        np.testing.assert_array_equal(codes == RowKind.EXCHANGE, kind.to_numpy() == "exchange")
    cols = {c: [0, 0] for c in COLUMNS} | {"kind": [RowKind.EXCHANGE, RowKind.GRAD]}
    assert list(make_frame(**cols)["kind"]) == ["exchange", "grad"]


def test_shared_schedules_are_sorted_by_update_worker_batch():
    for sched in list(_schedules())[:2]:
        f = sched.frame
        keys = np.lexsort((f["batch"], f["worker"], f["update"]))
        np.testing.assert_array_equal(keys, np.arange(len(f)))


def test_replica_schedules_are_sorted_by_time():
    sched = simulate(EASGD(3, 2, 0.1), stats.expon(), updates=10)
    assert sched.frame["time"].is_monotonic_increasing


def test_bad_inputs():
    sched = next(_schedules())
    with pytest.raises(ValueError, match="path"):
        sched.save("x.txt")
    with pytest.raises(ValueError, match="frame"):
        Schedule(sched.frame.drop(columns=["batch"]))
    with pytest.raises(ValueError, match="status"):
        Schedule(sched.frame, status="weird")


def test_summary_backup_fields():
    s = simulate(Backup(6, 2), stats.expon(), updates=200, seed=4).summary()
    assert s["updates"] == 200 and s["gradients"] == 8 * 200
    assert s["dropped_fraction"] == pytest.approx(2 / 8)
    assert s["staleness_max"] == 0 and s["status"] == "ok"
