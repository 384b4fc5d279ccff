import torch

from fave.flow.meanflow import consistent_target, time_derivative
from fave.flow.paths import linear_path
from fave.flow.samplers import euler_x1, one_step
from fave.flow.time_samplers import end_times, mode_times


def _fn(x, t, r):
    # a smooth nonlinear function of (x, t, r) with parameters, like a network
    w = torch.linspace(-1, 1, x.shape[-1])
    return torch.tanh(x * w + t[:, None] ** 2) * (1 + r[:, None]) + x.sin() * t[:, None]


def test_jvp_matches_finite_difference():
    torch.manual_seed(0)
    x, v = torch.randn(4, 6, dtype=torch.float64), torch.randn(4, 6, dtype=torch.float64)
    t, r = torch.rand(4, dtype=torch.float64), torch.rand(4, dtype=torch.float64)
    f, df = time_derivative(lambda a, b, c: _fn(a.double(), b.double(), c.double()).float(), x, t, r, v)
    h = 1e-3
    fd = (_fn(x + h * v, t + h, r) - _fn(x - h * v, t - h, r)) / (2 * h)
    assert torch.allclose(f.double(), _fn(x, t, r), atol=1e-5)
    assert torch.allclose(df.double(), fd, atol=1e-3)
    assert (df.abs() > 1e-3).any()


def test_consistent_target_is_x1_when_r_equals_t():
    x1, f, df = torch.randn(3, 5), torch.randn(3, 5), torch.randn(3, 5)
    t = torch.tensor([0.1, 0.5, 0.9])
    assert torch.allclose(consistent_target(x1, f, df, t, t.clone()), x1)


def test_consistent_target_asks_zero_derivative_at_r_one():
    x1, f, df = torch.randn(3, 5), torch.randn(3, 5), torch.randn(3, 5)
    t = torch.tensor([0.1, 0.5, 0.9])
    tgt = consistent_target(x1, f, df, t, torch.ones(3))
    assert torch.allclose(tgt, f + (1 - t)[:, None] * df)


def test_consistent_target_zero_residual_on_exact_flow_map():
    # 1-D point-mass flow: x0 fixed prior point, x1 fixed; exact x1-predictor f = x1 for any (x_t, t, r)
    x0, x1 = torch.zeros(2, 3), torch.ones(2, 3)
    t, r = torch.tensor([0.2, 0.6]), torch.tensor([0.7, 1.0])
    x_t, v = linear_path(x0, x1, t)
    f, df = time_derivative(lambda x, tt, rr: x + (1 - tt[:, None]) * (x1 - x0) * 0 + (x1 - x), x_t, t, r, v)
    assert torch.allclose(consistent_target(x1, f, df, t, r), f)


def test_time_samplers_ranges():
    t = mode_times((10000,))
    assert t.min() >= 1e-3 and t.max() <= 1
    r = end_times(torch.full((10000,), 0.3), p_end=0.75)
    assert (r >= 0.3).all() and abs((r == 1).float().mean() - 0.75) < 0.03


def test_euler_final_state_is_mean_of_predictions_and_one_step_single_call():
    calls = []

    def fn(x, t):
        calls.append(1)
        return x * 0.5 + t[:, None]

    x0 = torch.randn(2, 4)
    preds, x = [], x0
    for k in range(5):
        t = torch.full((2,), k / 5)
        p = x * 0.5 + t[:, None]
        preds.append(p)
        x = x + (p - x0) / 5
    out = euler_x1(fn, x0, 5)
    assert len(calls) == 5 and torch.allclose(out, torch.stack(preds).mean(0), atol=1e-6)
    calls.clear()
    one_step(fn, x0)
    assert len(calls) == 1
