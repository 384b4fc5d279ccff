"""Distances, trajectory summaries and the Euler-states helper, on hand-made cases."""

from __future__ import annotations

import math

import pytest
import torch

from fave.figures.geometry import distances, mean_std, path_length, tsne_2d
from fave.figures.priors import spread
from fave.figures.trajectories import trajectory_summary
from fave.flow.samplers import euler_x1, euler_x1_states

R2 = math.sqrt(2.0)


def test_distances_by_hand() -> None:
    x = torch.tensor([[3.0, 4.0], [1.0, 0.0], [1.0, 0.0]])
    e = torch.tensor([[6.0, 8.0], [0.0, 2.0], [-1.0, 0.0]])
    d = distances(x, e)
    assert d["cosine"].tolist() == pytest.approx([0.0, 1.0, 2.0], abs=1e-6)
    assert d["l2_unit"].tolist() == pytest.approx([0.0, R2, 2.0], abs=1e-6)
    assert d["l2"].tolist() == pytest.approx([5.0, math.sqrt(5.0), 2.0], abs=1e-6)
    zero = distances(torch.zeros(1, 2), torch.tensor([[0.0, 1.0]]))  # an all-masked anchor
    assert zero["cosine"].item() == pytest.approx(1.0) and zero["l2"].item() == pytest.approx(1.0)


def test_trajectory_summary_by_hand() -> None:
    # user 0 turns from (1, 0) through (1, 1) to its target (0, 1); user 1 sits on its target
    states = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 1.0], [0.0, 2.0]], [[0.0, 1.0], [0.0, 3.0]]])
    targets = torch.tensor([[0.0, 5.0], [0.0, 1.0]])
    s = trajectory_summary(states, targets)
    assert s["t"] == [0.0, 0.5, 1.0] and s["users"] == 2
    assert s["cosine"]["mean"] == pytest.approx([0.5, (1 - 1 / R2) / 2, 0.0], abs=1e-6)
    assert s["cosine"]["std"][0] == pytest.approx(0.5)
    assert s["l2_unit"]["mean"] == pytest.approx([R2 / 2, math.sqrt(2 - R2) / 2, 0.0], abs=1e-6)
    assert s["l2"]["mean"] == pytest.approx([math.sqrt(26) / 2, (math.sqrt(17) + 1) / 2, 3.0], abs=1e-5)
    seg = math.sqrt(2 - R2)  # chord between unit vectors 45 degrees apart
    assert path_length(states).tolist() == pytest.approx([2 * seg, 0.0], abs=1e-6)
    assert s["path_length_unit"]["mean"] == pytest.approx(seg)
    assert s["start_to_end_l2_unit"]["mean"] == pytest.approx(R2 / 2)


def test_mean_std_and_spread() -> None:
    assert mean_std(torch.tensor([1.0, 3.0]), dim=0) == {"mean": 2.0, "std": 1.0}
    same = torch.tensor([[2.0, 0.0], [5.0, 0.0]])
    assert spread(same)["mean"] == pytest.approx(0.0)
    orthogonal = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # both 45 degrees from their mean direction
    assert spread(orthogonal)["mean"] == pytest.approx(math.sqrt(2 - R2))


def test_euler_states_end_in_euler_x1() -> None:
    torch.manual_seed(0)
    w = torch.randn(4, 4)

    def fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x @ w) + t[:, None]

    x_0 = torch.randn(3, 4)
    states = euler_x1_states(fn, x_0, 7)
    assert states.shape == (8, 3, 4)
    assert torch.equal(states[0], x_0)
    assert torch.equal(states[-1], euler_x1(fn, x_0, 7))  # the same arithmetic, bit for bit


def test_tsne_is_seeded_and_small_sets_work() -> None:
    pts = torch.randn(12, 6, generator=torch.Generator().manual_seed(1)).numpy()
    a, b = tsne_2d(pts, seed=3), tsne_2d(pts, seed=3)
    assert a.shape == (12, 2) and (a == b).all()
