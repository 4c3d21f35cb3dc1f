"""Scheme values (toolkit.schemes): validation names the field, Rule identities, make_scheme."""

from __future__ import annotations

import dataclasses

import pytest

from toolkit.schemes import (
    EASGD,
    SCHEMES,
    Async,
    Backup,
    Delayed,
    DiLoCo,
    KAsync,
    KBatchAsync,
    KBatchSync,
    LocalSGD,
    Rule,
    Sync,
    make_scheme,
)

# (constructor, kwargs, field the message must name)
INVALID = [
    (Sync, {"n": 0}, "n"),
    (Sync, {"n": -3}, "n"),
    (Sync, {"n": 2.0}, "n"),
    (Sync, {"n": True}, "n"),
    (Sync, {"n": "4"}, "n"),
    (Backup, {"n": 4, "b": -1}, "b"),
    (Backup, {"n": 0, "b": 1}, "n"),
    (Backup, {"n": 4, "b": 1.5}, "b"),
    (KBatchSync, {"n": 4, "k": 0}, "k"),
    (KBatchSync, {"n": 0, "k": 2}, "n"),
    (Async, {"n": 0}, "n"),
    (Async, {"n": 1.0}, "n"),
    (KBatchAsync, {"n": 4, "k": 5}, "k"),
    (KBatchAsync, {"n": 4, "k": 0}, "k"),
    (KBatchAsync, {"n": 4, "k": 2.0}, "k"),
    (KAsync, {"n": 4, "k": 5}, "k"),
    (KAsync, {"n": 4, "k": 0}, "k"),
    (Delayed, {"n": 4, "delay": -1}, "delay"),
    (Delayed, {"n": 4, "delay": 0.5}, "delay"),
    (EASGD, {"n": 4, "tau": 0, "alpha": 0.1}, "tau"),
    (EASGD, {"n": 4, "tau": 2.0, "alpha": 0.1}, "tau"),
    (EASGD, {"n": 4, "tau": 1, "alpha": 0.0}, "alpha"),
    (EASGD, {"n": 4, "tau": 1, "alpha": 1.0}, "alpha"),
    (EASGD, {"n": 4, "tau": 1, "alpha": -0.2}, "alpha"),
    (EASGD, {"n": 4, "tau": 1, "alpha": 0.1, "momentum": 1.0}, "momentum"),
    (EASGD, {"n": 4, "tau": 1, "alpha": 0.1, "momentum": -0.1}, "momentum"),
    (EASGD, {"n": 0, "tau": 1, "alpha": 0.1}, "n"),
    (LocalSGD, {"n": 4, "tau": 0}, "tau"),
    (LocalSGD, {"n": 0, "tau": 1}, "n"),
    (DiLoCo, {"n": 4, "h": 0}, "h"),
    (DiLoCo, {"n": 4, "h": 2, "outer_lr": 0.0}, "outer_lr"),
    (DiLoCo, {"n": 4, "h": 2, "outer_momentum": 1.0}, "outer_momentum"),
]


@pytest.mark.parametrize(("cls", "kwargs", "field"), INVALID)
def test_invalid_values_raise_value_error_naming_the_field(cls, kwargs, field):
    with pytest.raises(ValueError, match=rf"\b{field}\b"):
        cls(**kwargs)


def test_valid_edge_values_are_accepted():
    assert Backup(4, 0).rule == Sync(4).rule
    assert KBatchAsync(4, 4).rule.quorum == 4
    assert Delayed(4, 0).rule == Sync(4).rule
    assert EASGD(4, 1, 0.5, momentum=0.0).beta == pytest.approx(2.0)
    assert EASGD(4, 1, 0.999, momentum=0.99).momentum == 0.99
    DiLoCo(4, 1, 1.0, 0.0)


def test_kbatchsync_allows_k_above_n():
    # a worker may contribute several mini-batches to one update (Dutta et al. 2018)
    s = KBatchSync(3, 7)
    assert s.rule == Rule(machines=3, quorum=7, barrier=True, repeat=True)


def test_rule_identities():
    assert Backup(5, 0).rule == Sync(5).rule
    assert Delayed(5, 0).rule == Sync(5).rule
    assert Backup(5, 3).rule == Rule(machines=8, quorum=5, barrier=True)
    assert Delayed(5, 2).rule.delay == 2
    assert Async(5).rule == Rule(machines=5, quorum=1, barrier=False)
    assert KBatchAsync(5, 5).rule == Rule(machines=5, quorum=5, barrier=False, repeat=True)
    # Dutta et al.'s K-async: k distinct workers, no repeat; k = 1 has Async's rule
    assert KAsync(5, 3).rule == Rule(machines=5, quorum=3, barrier=False)
    assert KAsync(5, 3).rule.kasync and not KBatchAsync(5, 3).rule.kasync
    assert KAsync(5, 1).rule == KBatchAsync(5, 1).rule == Async(5).rule
    # DiLoCo with h = 1 averages like Sync(n), on replicas that meet every step
    assert DiLoCo(5, 1, 1.0, 0.0).rule == Rule(machines=5, quorum=5, barrier=True, period=1)
    assert LocalSGD(5, 3).rule.replicas and not Sync(5).rule.replicas
    assert EASGD(5, 2, 0.1, synchronous=False).rule == Rule(
        machines=5, quorum=1, barrier=False, period=2
    )


def test_schemes_are_frozen_values():
    s = Backup(4, 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.n = 5
    assert Backup(4, 1) == s and hash(Backup(4, 1)) == hash(s)
    assert s.to_dict() == {"name": "backup", "n": 4, "b": 1}


def test_make_scheme_builds_every_scheme():
    assert make_scheme("backup", n=4, b=2) == Backup(4, 2)
    assert make_scheme("SYNC", n=3, b=None, k=None) == Sync(3)
    assert make_scheme("easgd", n=3, tau=2, alpha=0.1) == EASGD(3, 2, 0.1)
    assert set(SCHEMES) == {
        "sync",
        "backup",
        "kbatchsync",
        "async",
        "kasync",
        "kbatchasync",
        "delayed",
        "easgd",
        "localsgd",
        "diloco",
    }


def test_make_scheme_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError, match="unknown scheme 'nope'") as info:
        make_scheme("nope", n=3)
    for name in SCHEMES:
        assert name in str(info.value)


def test_make_scheme_wrong_or_missing_fields():
    with pytest.raises(ValueError, match="tau"):
        make_scheme("sync", n=3, tau=2)
    with pytest.raises(ValueError, match="b"):
        make_scheme("backup", n=3)
    for name in ("kasync", "kbatchasync"):
        with pytest.raises(ValueError, match=r"k must be an integer in \[1, 3\]"):
            make_scheme(name, n=3, k=4)


# (fields, what the message must name): combinations no clock path or theory handles
BAD_RULES = [
    ({"machines": 0, "quorum": 1, "barrier": True}, "machines"),
    ({"machines": 4, "quorum": 0, "barrier": True}, "quorum"),
    ({"machines": 4, "quorum": 5, "barrier": True}, "quorum"),  # Sync cannot wait for 5 of 4
    ({"machines": 4, "quorum": 5, "barrier": False, "repeat": True}, "quorum"),
    ({"machines": 4, "quorum": 4, "barrier": False, "delay": 1}, "delay"),
    ({"machines": 4, "quorum": 2, "barrier": True, "delay": 1}, "delay"),
    ({"machines": 4, "quorum": 4, "barrier": True, "repeat": True, "delay": 1}, "delay"),
    ({"machines": 4, "quorum": 4, "barrier": True, "period": 2, "repeat": True}, "period"),
    ({"machines": 4, "quorum": 2, "barrier": True, "period": 2}, "quorum"),
    ({"machines": 4, "quorum": 2, "barrier": False, "period": 2}, "quorum"),
    ({"machines": 4, "quorum": 4, "barrier": 1}, "barrier"),
    ({"machines": 4, "quorum": 4, "barrier": True, "period": -1}, "period"),
]


@pytest.mark.parametrize(("fields", "name"), BAD_RULES)
def test_rule_refuses_combinations_no_path_handles(fields, name):
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        Rule(**fields)


def test_every_scheme_rule_is_valid_and_labels_are_one_function():
    examples = [
        Sync(4),
        Backup(4, 1),
        KBatchSync(3, 7),
        Async(4),
        KAsync(4, 2),
        KBatchAsync(4, 2),
        Delayed(4, 2),
        EASGD(4, 2, 0.1, momentum=0.5, synchronous=False),
        LocalSGD(4, 3),
        DiLoCo(4, 2),
    ]
    assert {type(s).name for s in examples} == set(SCHEMES)
    for s in examples:
        assert isinstance(s.rule, Rule)
    assert str(Backup(96, 4)) == "Backup(n=96, b=4)"
    assert str(EASGD(4, 2, 0.1, synchronous=False)) == (
        "EASGD(n=4, tau=2, alpha=0.1, momentum=0, asynchronous)"
    )
    assert str(DiLoCo(4, 2)) == "DiLoCo(n=4, h=2, outer_lr=0.7, outer_momentum=0.9)"
