"""Frequency groups (paper 2.11) and the per-class statistics logged by the training loop."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from heavytail import LinearProblem, make_optimizer
from heavytail.data import heavy_tailed_class_sizes
from heavytail.train import FrequencyGroups, train
from heavytail.train.metrics import correct_predictions


def _zipf_counts(seed, num_classes):
    rng = np.random.default_rng(seed)
    counts = np.floor(rng.integers(1, 2000) / np.arange(1, num_classes + 1) ** rng.uniform(0.5, 2.0)).astype(int)
    return rng.permutation(counts)  # class index unrelated to frequency; zero counts are possible


def _boundary_violations(groups):
    """Check the cut rule of paper 2.11 for every cut; return the list of cuts where it fails."""
    counts = groups.counts
    share = counts[groups.order] / counts.sum()
    cumulative = np.cumsum(share)
    G = groups.num_groups
    bad = []
    for q in range(1, G):
        end = groups.ends[q - 1]  # group q-1 ends after sorted position end-1
        reached = cumulative[end - 1]
        before = cumulative[end - 2] if end >= 2 else 0.0
        # the class at position end-1 is the first whose cumulative mass reaches q/G
        if not (reached >= q / G - 1e-12 and before < q / G - 1e-12):
            bad.append(q)
    return bad


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("num_groups", [1, 2, 3, 5, 10, 40])
def test_groups_partition_classes_from_most_to_least_frequent(seed, num_groups):
    counts = _zipf_counts(seed, 30)
    groups = FrequencyGroups.from_counts(counts, num_groups)
    members = groups.members()
    assert len(members) == num_groups == groups.num_groups
    every = np.concatenate(members)
    assert sorted(every.tolist()) == list(range(len(counts)))  # each class in exactly one group
    assignment = groups.assignment()
    for g, m in enumerate(members):
        assert np.all(assignment[m] == g)
    non_empty = [counts[m] for m in members if len(m)]
    for earlier, later in zip(non_empty, non_empty[1:]):
        assert earlier.min() >= later.max()  # no class of a later group is more frequent
    assert groups.mass().sum() == pytest.approx(1.0)
    assert _boundary_violations(groups) == []


@pytest.mark.parametrize("m", [8, 9, 10])
def test_rhtl_groups_have_about_equal_mass(m):
    counts = heavy_tailed_class_sizes(m).numpy()
    groups = FrequencyGroups.from_counts(counts, 10)
    share = counts / counts.sum()
    mass = groups.mass()
    assert len(mass) == 10 and mass.sum() == pytest.approx(1.0)
    # Tolerance: cut q ends its group after the first class whose cumulative mass E_q reaches q/10, so
    # 0 <= E_q - q/10 < share of that boundary class b_q.  A group's mass is E_{g+1} - E_g, hence
    # -share(b_g) < mass_g - 1/10 < share(b_{g+1}): each group is within one boundary class's share.
    ends = groups.ends
    boundary_share = np.concatenate([[0.0], share[groups.order[ends[:-1] - 1]], [0.0]])
    for g in range(10):
        assert -boundary_share[g] - 1e-12 < mass[g] - 0.1 < boundary_share[g + 1] + 1e-12
    # the largest class (share 1/m) bounds every deviation; m = 10 has one class of exactly 1/10
    assert np.all(np.abs(mass - 0.1) < 1 / m)
    if m == 10:
        assert mass == pytest.approx(np.full(10, 0.1))
        assert [len(x) for x in groups.members()] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
    assert _boundary_violations(groups) == []


@pytest.mark.parametrize("m", [8, 9, 10])
def test_describe_matches_members(m):
    counts = heavy_tailed_class_sizes(m).numpy()
    groups = FrequencyGroups.from_counts(counts, 10)
    rows = groups.describe()
    rank = 0
    for row, members, mass in zip(rows, groups.members(), groups.mass()):
        assert row["first_rank"] == rank
        assert row["num_classes"] == len(members) == row["last_rank"] - row["first_rank"] + 1
        assert row["max_count"] == counts[members].max() and row["min_count"] == counts[members].min()
        assert row["mass"] == pytest.approx(mass) == pytest.approx(counts[members].sum() / counts.sum())
        # RHTL classes are already in frequency order, so ranks are class indices
        assert members.tolist() == list(range(row["first_rank"], row["last_rank"] + 1))
        rank += len(members)
    assert rank == len(counts)


def test_boundary_class_goes_to_the_earlier_group():
    # cumulative mass 0.3, 0.6, 0.8, 1.0: class 1 crosses the cut 0.5 and belongs to group 0
    groups = FrequencyGroups.from_counts([3, 3, 2, 2], 2)
    assert [m.tolist() for m in groups.members()] == [[0, 1], [2, 3]]
    # a cut hit exactly ends the group at that class
    groups = FrequencyGroups.from_counts([5, 5, 5, 5], 2)
    assert [m.tolist() for m in groups.members()] == [[0, 1], [2, 3]]
    # classes come sorted by count whatever their index; ties keep index order
    groups = FrequencyGroups.from_counts([1, 5, 3, 1], 2)
    assert groups.order.tolist() == [1, 2, 0, 3]
    assert [m.tolist() for m in groups.members()] == [[1], [2, 0, 3]]


def test_equal_classes_with_float_rounding_in_the_cumulative_sum():
    # 7/70, 14/70, 21/70 ... are not exact binary fractions; each cut must still end after its class
    groups = FrequencyGroups.from_counts([7] * 10, 10)
    assert [m.tolist() for m in groups.members()] == [[k] for k in range(10)]
    groups = FrequencyGroups.from_counts([7] * 10, 5)
    assert [m.tolist() for m in groups.members()] == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]


def test_one_class_spanning_several_cuts_leaves_empty_groups():
    groups = FrequencyGroups.from_counts([90, 5, 5], 10)
    members = [m.tolist() for m in groups.members()]
    # class 0 reaches cuts 0.1 .. 0.9 (its cumulative mass is exactly 0.9), so groups 1 .. 8 are empty
    assert members == [[0]] + [[]] * 8 + [[1, 2]]
    assert groups.mass() == pytest.approx([0.9] + [0.0] * 8 + [0.1])
    rows = groups.describe()
    assert [r["num_classes"] for r in rows] == [1] + [0] * 8 + [2]
    assert rows[9]["first_rank"] == 1 and rows[9]["last_rank"] == 2
    reduced = groups.reduce(np.array([1.0, 2.0, 4.0]))
    assert reduced[0] == 1.0 and reduced[9] == 3.0 and np.all(np.isnan(reduced[1:9]))


def test_more_groups_than_classes():
    groups = FrequencyGroups.from_counts([1, 1], 10)
    members = groups.members()
    assert sum(len(m) for m in members) == 2
    assert [g for g, m in enumerate(members) if len(m)] == [0, 5]  # class 1 reaches cuts 0.6 .. 0.9 at group 5


def test_reduce_is_the_sample_weighted_group_mean():
    counts = np.array([4, 2, 1, 1])  # cumulative 0.5, 0.75, 0.875, 1: groups {0}, {1, 2, 3}
    groups = FrequencyGroups.from_counts(counts, 2)
    assert [m.tolist() for m in groups.members()] == [[0], [1, 2, 3]]
    losses = np.array([[1.0, 2.0, 3.0, 5.0], [0.5, 1.0, 7.0, 3.0]])
    expected = np.array([[1.0, (2 * 2.0 + 3.0 + 5.0) / 4], [0.5, (2 * 1.0 + 7.0 + 3.0) / 4]])
    np.testing.assert_allclose(groups.reduce(losses), expected, rtol=1e-15)
    assert groups.reduce(losses).shape == (2, 2)
    # a class not seen (NaN) drops out of its group's mean
    np.testing.assert_allclose(groups.reduce(np.array([1.0, 2.0, np.nan, 5.0])), [1.0, (4.0 + 5.0) / 3])


def test_reduce_with_random_values_against_direct_sum():
    rng = np.random.default_rng(0)
    counts = _zipf_counts(1, 25)
    groups = FrequencyGroups.from_counts(counts, 4)
    values = rng.uniform(size=(3, 25))
    for g, members in enumerate(groups.members()):
        if counts[members].sum() == 0:
            continue
        expected = (counts[members] * values[:, members]).sum(axis=1) / counts[members].sum()
        np.testing.assert_allclose(groups.reduce(values)[:, g], expected, rtol=1e-12)


def test_recorded_class_statistics_match_a_direct_computation():
    problem = LinearProblem(m=5).build(0)
    weight, bias = (p.detach().clone() for p in (problem.model.weight, problem.model.bias))
    x, y = problem.x, problem.y
    history = train(problem, make_optimizer("gd", problem.model.parameters(), 0.1), 2).history

    logits = x.double() @ weight.double().T + bias.double()
    losses = F.cross_entropy(logits, y, reduction="none")
    counts = torch.bincount(y, minlength=31).double()
    class_loss = torch.zeros(31, dtype=torch.float64).index_add_(0, y, losses) / counts
    correct = (logits.argmax(dim=1) == y).double()
    class_accuracy = torch.zeros(31, dtype=torch.float64).index_add_(0, y, correct) / counts

    np.testing.assert_array_equal(history.class_counts, counts.long().numpy())
    np.testing.assert_allclose(history.class_loss[0], class_loss.numpy(), rtol=1e-5)
    np.testing.assert_allclose(history.class_accuracy[0], class_accuracy.numpy(), atol=1e-7)
    assert history.loss[0] == pytest.approx(float(losses.mean()), rel=1e-6)
    assert history.objective[0] == history.loss[0]  # no reweighting
    # a group's loss is the plain mean of its samples' losses
    group_of = torch.as_tensor(history.groups(4).assignment())[y]
    for g in range(4):
        assert history.group_loss(4)[0, g] == pytest.approx(float(losses[group_of == g].mean()), rel=1e-5)
    assert history.group_accuracy(4)[0, 0] == pytest.approx(float(correct[group_of == 0].mean()), abs=1e-6)


@pytest.mark.parametrize("case", ["random", "ties", "zero", "confident"])
def test_correct_predictions_equal_argmax_including_ties(case):
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(500, 17, generator=generator)
    if case == "ties":
        logits = logits.round()  # many exact ties at the maximum
    elif case == "zero":
        logits = torch.zeros(500, 17)  # every class ties: argmax says class 0
    elif case == "confident":
        logits = logits * 20
    targets = torch.randint(0, 17, (500,), generator=generator)
    losses = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
    expected = logits.argmax(dim=1) == targets
    assert torch.equal(correct_predictions(logits, targets, losses), expected)
    assert 0 < expected.sum() < 500 or case in ("zero", "confident")
