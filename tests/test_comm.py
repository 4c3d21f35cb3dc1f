"""Communication models: closed forms of the alpha-beta model and input validation."""

import numpy as np
import pytest

from toolkit.models.comm import (
    Hierarchical,
    ParameterServer,
    RingAllReduce,
    ShardedServer,
    exchange_cost,
    parse_comm,
)


def test_parameter_server_is_linear_in_n_and_ring_is_nearly_flat():
    ps = ParameterServer(nbytes=1e6, bandwidth=1e9, latency=1e-4)
    ring = RingAllReduce(nbytes=1e6, bandwidth=1e9, latency=1e-4)
    for n in (1, 2, 8, 64):
        assert ps.exchange_time(n) == pytest.approx(2e-4 + 2 * n * 1e-3)
        # Patarasuk & Yuan (2009): 2 (n-1) latency + 2 (n-1)/n bytes / bandwidth
        assert ring.exchange_time(n) == pytest.approx(2 * (n - 1) * 1e-4 + 2 * (n - 1) / n * 1e-3)
    assert ShardedServer(1e6, 1e9, 1e-4, shards=4).exchange_time(8) == pytest.approx(
        2e-4 + 2 * 8 * 1e-3 / 4
    )
    h = Hierarchical(1e6, 1e9, 1e-4, group=4, local_bandwidth=1e10, local_latency=0.0)
    local = RingAllReduce(1e6, 1e10, 0.0).exchange_time(4)
    assert h.exchange_time(16) == pytest.approx(local + ps.exchange_time(4))


def test_exchange_cost_moves_q_gradients_in_and_m_models_out():
    ps = ParameterServer(nbytes=1e6, bandwidth=1e9, latency=0.0)
    assert exchange_cost(ps, 6, 8) == pytest.approx((6 + 8) * 1e-3)
    assert exchange_cost(ps, np.int64(8), np.int64(8)) == pytest.approx(ps.exchange_time(8))
    assert exchange_cost(None, 3, 4) == 0.0


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: ParameterServer(nbytes="1", bandwidth=1e9), "nbytes"),
        (lambda: ParameterServer(nbytes=1.0, bandwidth=0.0), "bandwidth"),
        (lambda: ParameterServer(nbytes=1.0, bandwidth=1e9, latency=-1.0), "latency"),
        (lambda: ShardedServer(1.0, 1e9, shards=1.5), "shards"),
        (lambda: Hierarchical(1.0, 1e9, group=0), "group"),
        (lambda: ParameterServer(1.0, 1e9).exchange_time(2.5), "n"),
        (lambda: parse_comm("Nope(nbytes=1)"), "comm"),
        (lambda: parse_comm("ParameterServer(nbytes=__import__('os'))"), "comm"),
    ],
)
def test_bad_values_name_the_field(build, field):
    with pytest.raises(ValueError, match=field):
        build()
