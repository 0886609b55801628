"""Random Heavy-Tailed Labels: sizes from the construction (paper 2.1, D1), input laws, seeding."""

import pytest
import torch

from heavytail.data import heavy_tailed_class_sizes, natural_groups, random_heavy_tailed_labels
from heavytail.options import ConfigError
from heavytail.problems import LinearProblem, make_problem_options


@pytest.mark.parametrize("m", [1, 3, 7, 8])
def test_sizes_follow_the_construction(m):
    data = random_heavy_tailed_labels(m)
    n, c, d = m * 2**m, 2**m - 1, (m + 1) * 2**m
    assert data.x.shape == (n, d)
    assert data.y.shape == (n,)
    assert data.num_classes == c
    assert data.y.dtype == torch.long
    assert torch.equal(torch.bincount(data.y, minlength=c), heavy_tailed_class_sizes(m))


@pytest.mark.parametrize("m", [1, 3, 7, 8])
def test_group_i_holds_2_to_the_i_classes_of_2_to_the_m_minus_i_samples(m):
    sizes, groups = heavy_tailed_class_sizes(m), natural_groups(m)
    assert len(sizes) == len(groups) == 2**m - 1
    for i in range(m):
        members = torch.nonzero(groups == i).flatten()
        # group i is the contiguous class range 2^i - 1 .. 2^(i+1) - 2
        assert torch.equal(members, torch.arange(2**i - 1, 2 ** (i + 1) - 1))
        assert torch.all(sizes[members] == 2 ** (m - i))
        assert int(sizes[members].sum()) == 2**m  # every group has mass 1/m
    assert int(sizes[0]) // int(sizes[-1]) == 2 ** (m - 1)  # most / least frequent ratio


def test_m3_labels_are_contiguous_by_hand():
    data = random_heavy_tailed_labels(3)
    # n = 3 * 8 = 24: one class of 8, two of 4, four of 2
    assert data.y.tolist() == [0] * 8 + [1] * 4 + [2] * 4 + [3, 3, 4, 4, 5, 5, 6, 6]
    assert heavy_tailed_class_sizes(3).tolist() == [8, 4, 4, 2, 2, 2, 2]
    assert natural_groups(3).tolist() == [0, 1, 1, 2, 2, 2, 2]


@pytest.mark.parametrize("m", [3, 7])
def test_labels_are_sorted_and_contiguous(m):
    y = random_heavy_tailed_labels(m).y
    assert int(y[0]) == 0
    steps = torch.diff(y)
    assert torch.all((steps == 0) | (steps == 1))  # non-decreasing, no class skipped
    assert int(y[-1]) == 2**m - 2


def test_d_override():
    data = random_heavy_tailed_labels(5, d=17)
    assert data.x.shape == (5 * 32, 17)
    problem = LinearProblem(m=5, d=17).build(0)
    assert problem.model.weight.shape == (31, 17)
    assert problem.info == {"n": 160, "d": 17, "c": 31}


def test_uniform_inputs_lie_in_unit_interval_with_uniform_moments():
    x = random_heavy_tailed_labels(7).x  # 896 x 1024 = 917 504 draws
    assert float(x.min()) >= 0.0 and float(x.max()) < 1.0
    assert float(x.mean()) == pytest.approx(0.5, abs=0.005)  # standard error 3e-4
    assert float(x.std()) == pytest.approx((1 / 12) ** 0.5, abs=0.005)


@pytest.mark.parametrize(("mean", "scale"), [(1.0, 1.0), (0.0, 1.0), (-2.0, 0.5), (0.25, 3.0)])
def test_gaussian_inputs_have_the_requested_mean_and_std(mean, scale):
    x = random_heavy_tailed_labels(6, inputs="gaussian", mean=mean, scale=scale).x  # 384 x 448 draws
    tolerance = 6 * scale / x.numel() ** 0.5
    assert float(x.mean()) == pytest.approx(mean, abs=tolerance)
    assert float(x.std()) == pytest.approx(scale, rel=0.01)
    assert float(x.min()) < mean < float(x.max())


def test_same_seed_same_data_different_seed_different_data():
    a, b, c = (random_heavy_tailed_labels(5, seed=s) for s in (3, 3, 4))
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert not torch.equal(a.x, c.x)
    assert torch.equal(a.y, c.y)  # labels are fixed by the construction
    g1, g2 = (random_heavy_tailed_labels(5, inputs="gaussian", seed=s).x for s in (0, 1))
    assert not torch.equal(g1, g2)


def test_problem_build_is_seeded():
    p1, p2, p3 = (LinearProblem(m=4).build(s) for s in (0, 0, 1))
    assert torch.equal(p1.x, p2.x)
    assert torch.equal(p1.model.weight, p2.model.weight) and torch.equal(p1.model.bias, p2.model.bias)
    assert not torch.equal(p1.x, p3.x)
    assert not torch.equal(p1.model.weight, p3.model.weight)


def test_inputs_are_independent_of_labels():
    data = random_heavy_tailed_labels(7)
    x, y = data.x.double(), data.y
    d = x.shape[1]
    counts = torch.bincount(y).double()
    class_means = torch.zeros(data.num_classes, dtype=torch.float64).index_add_(0, y, x.sum(dim=1)) / (counts * d)
    # the mean of class k averages n_k * d independent U[0,1) draws: standard error sqrt(1/12 / (n_k d))
    standard_error = (1 / 12 / (counts * d)).sqrt()
    assert torch.all((class_means - 0.5).abs() < 5 * standard_error)
    # and the feature-wise means of the most frequent class look like those of the rest
    head, tail = x[y == 0].mean(dim=0), x[y != 0].mean(dim=0)
    assert float((head - tail).abs().max()) < 5 * (1 / 12 * (1 / 128 + 1 / 768)) ** 0.5


@pytest.mark.parametrize("m", [0, -1, 17])
def test_linear_problem_rejects_m_out_of_range(m):
    with pytest.raises(ConfigError, match=f"m={m}"):
        LinearProblem(m=m)


def test_linear_problem_rejects_mean_or_scale_with_uniform_inputs():
    with pytest.raises(ConfigError, match="mean=.*inputs=gaussian"):
        LinearProblem(m=4, mean=1.0)
    with pytest.raises(ConfigError, match="scale="):
        LinearProblem(m=4, scale=2.0)
    LinearProblem(m=4, inputs="gaussian", mean=1.0, scale=2.0)  # the valid combination builds


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"m": "0"}, "m=0"),
        ({"m": "seven"}, "'seven'"),
        ({"inputs": "cauchy"}, "'cauchy'.*uniform, gaussian"),
        ({"d": "0"}, "d=0"),
        ({"loss_weights": "-1"}, "loss_weights=-1"),
        ({"reweight": "-1"}, "loss_weights=-1"),  # its former name
        ({"size": "7"}, "'size'.*choose from: m, inputs"),
    ],
)
def test_bad_problem_options_name_the_bad_value(values, named):
    with pytest.raises(ConfigError, match=named):
        make_problem_options("linear", values)


def test_string_options_are_coerced():
    options = make_problem_options("linear", {"m": "6", "inputs": "gaussian", "mean": "1", "d": "none"})
    assert options == LinearProblem(m=6, inputs="gaussian", mean=1.0, d=None)
    assert isinstance(options.m, int) and isinstance(options.mean, float)
