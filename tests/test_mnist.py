"""MNIST files, Barcoded MNIST construction, the CNN, and natural groups (on the real test split)."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from heavytail import RunSpec, run, summarize
from heavytail.cli import main
from heavytail.data.barcode import barcodes, read_codes, stamp
from heavytail.data.datadir import DataError
from heavytail.data.mnist import load_mnist, read_idx
from heavytail.models.cnn import cnn
from heavytail.problems import make_problem_options

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
pytestmark = pytest.mark.skipif(not (SHARED / "mnist").is_dir(), reason="../shared/data/mnist not present")
TEST_DIGIT_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]  # the published MNIST test split
SMALL = {"source": "test", "plain_per_digit": 20, "bits": 3, "per_class": 2, "width1": 4, "width2": 8}
PLAIN = {k: v for k, v in SMALL.items() if k not in ("bits", "per_class")}
BARCODED = {k: v for k, v in SMALL.items() if k != "plain_per_digit"}


@pytest.fixture(autouse=True)
def shared_data(monkeypatch):
    monkeypatch.setenv("HEAVYTAIL_DATA", str(SHARED))


def test_test_split_shapes_and_label_counts():
    images, labels = load_mnist("test")
    assert images.shape == (10_000, 28, 28) and images.dtype == torch.uint8
    assert torch.bincount(labels).tolist() == TEST_DIGIT_COUNTS
    assert int(images.max()) == 255 and int(images[:, 0, :16].max()) <= 255


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_copy_is_one_line_error_naming_the_file(tmp_path, monkeypatch, damage):
    (tmp_path / "mnist").mkdir()
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(SHARED / "mnist" / name, tmp_path / "mnist" / name)
    target = tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz"
    data = bytearray(target.read_bytes())
    if damage == "truncate":
        data = data[:1000]
    else:
        data[len(data) // 2] ^= 0x55
    target.write_bytes(bytes(data))
    monkeypatch.setenv("HEAVYTAIL_DATA", str(tmp_path))
    with pytest.raises(DataError) as info:
        load_mnist("test")
    assert str(target) in str(info.value) and "\n" not in str(info.value)


def test_idx_reader_checks_magic_and_length(tmp_path):
    raw = gzip.decompress((SHARED / "mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes())
    (tmp_path / "labels.idx").write_bytes(raw)
    assert read_idx(tmp_path / "labels.idx").shape == (10_000,)  # ungzipped files work too
    (tmp_path / "short.idx").write_bytes(raw[:-3])
    with pytest.raises(DataError, match="short.idx holds 10,005 bytes, expected 10,008"):
        read_idx(tmp_path / "short.idx")
    (tmp_path / "magic.idx").write_bytes(b"\x00\x00\x09\x01" + raw[4:])
    with pytest.raises(DataError, match="magic"):
        read_idx(tmp_path / "magic.idx")


def test_barcodes_are_lexicographic_and_decode_from_pixels():
    codes = barcodes(3)
    assert codes.astype(int).tolist()[:3] == [[0, 0, 0], [0, 0, 1], [0, 1, 0]] and len(codes) == 8
    assert len(barcodes(3, zero_code=False)) == 7
    images, _ = load_mnist("test")
    picked = images[:8]
    assert int(picked[:, 0, :3].max()) == 0  # the code pixels are blank in plain digits
    assert read_codes(stamp(picked, codes), 3).tolist() == list(range(8))


def test_variants_class_counts_and_natural_groups():
    plain = make_problem_options("mnist", PLAIN).build(0)
    assert plain.num_classes == 10 and torch.bincount(plain.y).tolist() == [20] * 10
    both = make_problem_options("mnist-barcoded", SMALL).build(0)
    assert both.num_classes == 10 + 10 * 8
    counts = torch.bincount(both.y, minlength=both.num_classes)
    assert counts[:10].tolist() == [20] * 10 and counts[10:].tolist() == [2] * 80
    assert both.class_groups.tolist() == [0] * 10 + [1] * 80 and both.group_names == ("original digits", "barcoded")
    only = make_problem_options("barcoded-only", {**BARCODED, "zero_code": False}).build(0)
    assert only.num_classes == 70 and only.class_groups is None
    assert torch.bincount(only.y).tolist() == [2] * 70
    # barcoded class 10·b + d holds digit d stamped with code b: its images carry code b
    raw = make_problem_options("barcoded-only", {**BARCODED, "normalize": "standard"}).build(0)
    pixels = (raw.x[:, 0] * 0.3081 + 0.1307) * 255
    decoded = read_codes(pixels.round().clamp(0, 255).byte(), 3)
    assert torch.equal(decoded, raw.y // 10)


def test_per_pixel_standardisation():
    x = make_problem_options("barcoded-only", BARCODED).build(0).x
    std = x.std(0)
    assert torch.allclose(x.mean(0), torch.zeros(1, 28, 28), atol=1e-5)
    assert torch.allclose(std[std > 1e-6], torch.ones_like(std[std > 1e-6]), atol=1e-4)


def test_cnn_shapes_and_parameter_counts():
    assert sum(p.numel() for p in cnn(10).parameters()) == 129_942  # the paper's ≈130 k
    model = cnn(10 + 10 * 1024)
    assert sum(p.numel() for p in model.parameters()) == 80_932 + 4_900 * 10_250 + 10_250  # ≈50.3 M
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10_250)


def test_run_reports_parameters_and_natural_groups(tmp_path, capsys):
    spec = RunSpec(problem="mnist-barcoded", problem_options=SMALL, optimizer="adam+m", lr=1e-2, steps=3)
    record = run(spec, tmp_path)
    summary = summarize(record)
    assert summary["num_parameters"] == summary["num_trainable_parameters"] == sum(p.numel() for p in cnn(90, 4, 8).parameters())
    assert [g["name"] for g in summary["groups"]] == ["original digits", "barcoded"]
    assert [g["num_classes"] for g in summary["groups"]] == [10, 80]
    expected = np.array([record.history.class_loss[0][:10] @ np.full(10, 20), record.history.class_loss[0][10:] @ np.full(80, 2)])
    assert np.allclose(summary["group_loss_initial"], expected / np.array([200, 160]), rtol=1e-5)
    assert len(summarize(record, 5)["group_loss_final"]) == 5  # --groups overrides natural groups
    linear = summarize(run(RunSpec(problem="linear", problem_options={"m": 3}, optimizer="gd", lr=0.1, steps=1), tmp_path))
    assert linear["num_parameters"] == 7 * 32 + 7  # d = 32, c = 7, with bias


def test_data_show_draws_examples(tmp_path, capsys):
    out = tmp_path / "barcodes.png"
    assert main(["data", "show", "barcoded-mnist", "--out", str(out), "-p", "bits=3"]) == 0
    assert out.stat().st_size > 5_000
