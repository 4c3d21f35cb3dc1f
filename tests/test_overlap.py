"""Layer-wise overlap (toolkit.theory.overlap): the recursion against its equal-layer closed form
and the bounds every schedule obeys."""

import numpy as np
import pytest

from toolkit.theory import layerwise_step_time


@pytest.mark.parametrize("layers", [1, 2, 5, 17])
@pytest.mark.parametrize(("B", "C", "F"), [(1.0, 1.0, 0.0), (2.0, 0.5, 0.3), (0.4, 3.0, 1.0)])
def test_equal_layers_closed_form(layers, B, C, F):
    # E_L = F + B/L + (L - 1) max(B, C)/L + C/L (module docstring)
    want = F + B / layers + (layers - 1) * max(B, C) / layers + C / layers
    got = layerwise_step_time([B / layers] * layers, [C / layers] * layers, forward=F)
    assert got == pytest.approx(want, rel=1e-12)


def test_limits_and_bounds():
    rng = np.random.default_rng(0)
    for _ in range(200):
        L = int(rng.integers(1, 12))
        b, c, f = rng.exponential(size=L), rng.exponential(size=L), float(rng.exponential())
        t = layerwise_step_time(b, c, forward=f)
        # never slower than no overlap, never faster than the busier of compute and link
        assert t <= f + b.sum() + c.sum() + 1e-12
        assert t >= f + max(b.sum(), c.sum()) - 1e-12
        assert t >= f + b.sum() + c[-1] - 1e-12  # the last layer's exchange follows all compute
    assert layerwise_step_time([2.0], [3.0], forward=1.0) == 6.0  # one layer: nothing overlaps
    assert layerwise_step_time([1.0, 1.0], [0.0, 0.0]) == 2.0


@pytest.mark.parametrize(
    ("backward", "comm", "forward", "field"),
    [
        ([], [], 0.0, "backward"),
        ([1.0], [1.0, 2.0], 0.0, "comm"),
        ([-1.0], [1.0], 0.0, "backward"),
        ([1.0], [np.inf], 0.0, "comm"),
        ([1.0], [1.0], -1.0, "forward"),
    ],
)
def test_bad_input_names_the_argument(backward, comm, forward, field):
    with pytest.raises(ValueError, match=field):
        layerwise_step_time(backward, comm, forward=forward)
