"""GroupTracker: group losses against a hand computation, the store behind it, SIGKILL, and DDP on 2 processes."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F

import heavytail as ht
from heavytail.cli import main as cli_main
from heavytail.options import ConfigError
from heavytail.store import Store
from heavytail.train import FrequencyGroups, train


def _hand_groups(counts, num_groups, batches, ignore_index=-100):
    """Reference: per-class mean loss and accuracy over all batches, then count-weighted means per group."""
    c = len(counts)
    loss_sum, correct, seen = np.zeros(c), np.zeros(c), np.zeros(c)
    for losses, targets, logits in batches:
        flat_t = targets.reshape(-1).numpy()
        flat_l = losses.reshape(-1).double().numpy()
        predicted = logits.reshape(-1, c).argmax(-1).numpy()
        for loss, target, guess in zip(flat_l, flat_t, predicted):
            if target == ignore_index:
                continue
            loss_sum[target] += loss
            correct[target] += guess == target
            seen[target] += 1
    groups = FrequencyGroups.from_counts(counts, num_groups)
    out_loss, out_acc = [], []
    for members in groups.members():
        members = [k for k in members if seen[k] > 0]
        weights = np.array([counts[k] for k in members], dtype=float)
        out_loss.append(
            sum(w * loss_sum[k] / seen[k] for w, k in zip(weights, members)) / weights.sum() if members else np.nan
        )
        out_acc.append(
            sum(w * correct[k] / seen[k] for w, k in zip(weights, members)) / weights.sum() if members else np.nan
        )
    valid = torch.cat([targets.reshape(-1) for _, targets, _ in batches]) != ignore_index
    mean = torch.cat([losses.reshape(-1).double() for losses, _, _ in batches])[valid].mean().item()
    return np.array(out_loss), np.array(out_acc), mean, int(valid.sum())


def _zipf_labels(generator, c, n):
    probabilities = 1.0 / torch.arange(1, c + 1) ** 1.1
    return torch.multinomial(probabilities, n, replacement=True, generator=generator)


@pytest.mark.parametrize("seed", range(3))
def test_group_losses_equal_a_hand_computation_with_sequences_and_ignore_index(seed):
    generator = torch.Generator().manual_seed(seed)
    c, batch, length = 37, 6, 9
    train_labels = _zipf_labels(generator, c, 4000)
    tracker = ht.GroupTracker.from_labels(train_labels, num_classes=c, num_groups=5)
    batches = []
    for _ in range(3):  # several updates, one log
        targets = _zipf_labels(generator, c, batch * length).view(batch, length)
        targets[torch.rand(batch, length, generator=generator) < 0.2] = -100
        logits = torch.randn(batch, length, c, generator=generator) * 3
        losses = F.cross_entropy(logits.flatten(0, -2), targets.flatten(), reduction="none").view(batch, length)
        tracker.update(losses, targets, logits)
        batches.append((losses, targets, logits))
    row = tracker.log(step=7)
    expected_loss, expected_accuracy, mean, samples = _hand_groups(tracker.groups.counts, 5, batches)
    np.testing.assert_allclose(row["group_loss"], expected_loss, rtol=1e-6)
    np.testing.assert_allclose(row["group_accuracy"], expected_accuracy, rtol=1e-6)
    assert row["loss"] == pytest.approx(mean, rel=1e-6)
    assert row["samples"] == samples and row["step"] == 7

    losses = F.cross_entropy(logits.flatten(0, -2), targets.flatten(), reduction="none")
    tracker.update(losses, targets)  # without logits: loss only, sums restarted after the log
    row = tracker.log(step=8)
    expected_loss, _, _, _ = _hand_groups(tracker.groups.counts, 5, [batches[-1]])
    np.testing.assert_allclose(row["group_loss"], expected_loss, rtol=1e-6)
    assert row["group_accuracy"] is None


def test_the_training_loop_and_the_tracker_share_one_component():
    """Row 0 of heavytail's loop equals the tracker fed the same forward pass's per-sample losses."""
    problem = ht.LinearProblem(m=5).build(seed=0)
    history = train(problem, ht.make_optimizer("gd", problem.model.parameters(), 0.1), steps=0).history
    logits = problem.model(problem.x).detach()
    losses = F.cross_entropy(logits, problem.y, reduction="none")
    tracker = ht.GroupTracker.from_labels(problem.y, num_classes=problem.num_classes, num_groups=10)
    tracker.update(losses, problem.y, logits)
    row = tracker.log(0)
    np.testing.assert_allclose(row["group_loss"], history.group_loss(10)[0], rtol=1e-6)
    np.testing.assert_allclose(row["group_accuracy"], history.group_accuracy(10)[0], rtol=1e-6)
    assert row["loss"] == pytest.approx(history.loss[0])


def test_natural_groups_are_used_as_given():
    counts = np.array([5, 1, 9, 3])
    tracker = ht.GroupTracker(counts, groups=[1, 0, 1, 0])
    tracker.update(torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([0, 1, 2, 3]))
    row = tracker.log(0)
    assert row["group_loss"] == pytest.approx([(1 * 2.0 + 3 * 4.0) / 4, (5 * 1.0 + 9 * 3.0) / 14])


def test_counts_from_label_files_and_stats_json(tmp_path):
    labels = np.array([0, 2, 2, 5, 2, -100, 0])
    expected = np.bincount([0, 2, 2, 5, 2, 0])
    np.save(tmp_path / "labels.npy", labels)
    (tmp_path / "labels.txt").write_text("\n".join(map(str, labels)) + "\n")
    (tmp_path / "stats.json").write_text(json.dumps({"class_counts": expected.tolist(), "tokens": 6}))
    for tracker in (
        ht.GroupTracker.from_labels(tmp_path / "labels.npy"),
        ht.GroupTracker.from_labels(str(tmp_path / "labels.txt")),
        ht.GroupTracker.from_labels(torch.as_tensor(labels)),
        ht.GroupTracker.from_stats(tmp_path / "stats.json"),
        ht.GroupTracker.from_stats({"counts": expected.tolist()}),
    ):
        np.testing.assert_array_equal(tracker.groups.counts, expected)
    assert len(ht.GroupTracker.from_labels(labels, num_classes=10).groups.counts) == 10
    with pytest.raises(ConfigError, match="class_counts, counts"):
        ht.GroupTracker.from_stats({"histogram": [1, 2]})
    with pytest.raises(ConfigError, match="expected .npy, .txt"):
        ht.GroupTracker.from_labels(tmp_path / "stats.json")


def _track(store, name, metadata, rows, seed=0):
    generator = torch.Generator().manual_seed(seed)
    with ht.GroupTracker([50, 20, 10, 5, 1], num_groups=3, name=name, metadata=metadata, store=store) as tracker:
        for step in range(rows):
            targets = torch.randint(0, 5, (16,), generator=generator)
            tracker.update(torch.rand(16, generator=generator) + step, targets)
            tracker.log(step)
    return tracker


def test_tracked_runs_are_runs_of_the_store_listed_plotted_and_loaded_by_name(tmp_path, capsys):
    store = Store(tmp_path)
    for optimizer in ("sgd", "adam"):
        _track(store, "my-gpt", {"optimizer": optimizer}, rows=4)
    ids = store.tracked("my-gpt")
    assert len(ids) == 2
    for run_id in ids:
        record = store.load(run_id)
        assert record.status == "complete" and isinstance(record.spec, ht.spec.TrackedSpec)
        assert record.history.step.tolist() == [0, 1, 2, 3]
        assert sorted(p.name for p in record.path.iterdir()) == ["history.npz", "result.json", "spec.json"]
        assert record.result["final_loss"] == pytest.approx(record.history.loss[-1])
    frame = ht.load_results(str(tmp_path))
    assert sorted(frame["metadata.optimizer"]) == ["adam", "sgd"] and set(frame["name"]) == {"my-gpt"}

    assert cli_main(["list", "--results", str(tmp_path)]) == 0
    assert "my-gpt optimizer=adam" in capsys.readouterr().out
    assert cli_main(["plot", "my-gpt", "--results", str(tmp_path), "--json"]) == 0
    plotted = json.loads(capsys.readouterr().out)
    assert sorted(plotted["runs"]) == sorted(ids) and all(os.path.exists(f) for f in plotted["files"])

    _track(store, "my-gpt", {"optimizer": "sgd"}, rows=2, seed=1)  # same name and metadata: replaces the run
    assert len(store.tracked("my-gpt")) == 2
    assert store.load(
        ht.spec.TrackedSpec(name="my-gpt", metadata={"optimizer": "sgd"}).run_id
    ).history.step.tolist() == [0, 1]
    with pytest.raises(ConfigError, match="2 tracked runs are named 'my-gpt'"):
        store.load("my-gpt")


KILLED_TRAINING = textwrap.dedent(
    """
    import sys, time, torch
    import heavytail as ht
    tracker = ht.GroupTracker([30, 10, 3, 1], num_groups=2, name="killed", store=sys.argv[1])
    generator = torch.Generator().manual_seed(0)
    for step in range(10_000):
        targets = torch.randint(0, 4, (8,), generator=generator)
        tracker.update(torch.full((8,), float(step)), targets)
        tracker.log(step)
        print(step, flush=True)
        time.sleep(0.01)
    """
)


def test_every_row_logged_before_a_sigkill_is_in_the_store(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(KILLED_TRAINING)
    process = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "store")], stdout=subprocess.PIPE, text=True
    )
    logged = [int(process.stdout.readline()) for _ in range(25)]
    process.send_signal(signal.SIGKILL)
    process.wait()
    record = Store(tmp_path / "store").load("killed")
    assert record.status == "failed"  # killed: no result, its lock released by the kernel
    steps = record.history.step.tolist()
    assert steps[: len(logged)] == logged and steps == list(range(len(steps)))  # every logged row, in order
    np.testing.assert_allclose(record.history.loss, record.history.step)  # each row whole: loss = step


def _ddp_worker(rank, world, init_file, batches, counts, out):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    tracker = ht.GroupTracker(counts, num_groups=4, name="ddp", store=out)
    for step, (losses, targets, logits) in enumerate(batches):
        half = len(targets) // world
        part = slice(rank * half, (rank + 1) * half)
        tracker.update(losses[part], targets[part], logits[part])
        row = tracker.log(step)
        torch.save(row, os.path.join(out, f"row-{rank}-{step}.pt"))
    tracker.close()
    dist.destroy_process_group()


def test_ddp_on_two_processes_gives_the_rows_of_one(tmp_path):
    generator = torch.Generator().manual_seed(0)
    counts = np.array([40, 25, 12, 9, 6, 4, 2, 1, 1])
    batches = []
    for _ in range(3):
        targets = torch.randint(0, 9, (4, 6), generator=generator)
        targets[0, 0] = -100
        logits = torch.randn(4, 6, 9, generator=generator)
        losses = F.cross_entropy(logits.flatten(0, -2), targets.flatten(), reduction="none").view(4, 6)
        batches.append((losses, targets, logits))
    single = ht.GroupTracker(counts, num_groups=4)
    expected = []
    for step, (losses, targets, logits) in enumerate(batches):
        single.update(losses, targets, logits)
        expected.append(single.log(step))
    out = tmp_path / "ddp"
    out.mkdir()
    mp.start_processes(
        _ddp_worker, args=(2, str(tmp_path / "init"), batches, counts, str(out)), nprocs=2, start_method="fork"
    )
    for rank in range(2):
        for step, row in enumerate(expected):
            got = torch.load(out / f"row-{rank}-{step}.pt")
            assert got["samples"] == row["samples"] and got["loss"] == pytest.approx(row["loss"], rel=1e-12)
            np.testing.assert_allclose(got["group_loss"], row["group_loss"], rtol=1e-12)
            np.testing.assert_allclose(got["group_accuracy"], row["group_accuracy"], rtol=1e-12)
    stored = Store(out).load("ddp")  # written once, by rank 0
    assert stored.status == "complete"
    np.testing.assert_allclose(stored.history.group_loss(4), [r["group_loss"] for r in expected], rtol=1e-6)
