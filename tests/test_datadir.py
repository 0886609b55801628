"""The data-directory rule, file checks and the offline download message."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from heavytail.cli import main
from heavytail.data.datadir import DataError, dataset_file, download, resolve_data_dir, verify

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_shared = pytest.mark.skipif(not (SHARED / "mnist").is_dir(), reason="../shared/data not present")


def test_data_dir_rule(monkeypatch, tmp_path):
    monkeypatch.setenv("HEAVYTAIL_DATA", str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "flag") == tmp_path / "flag"
    assert resolve_data_dir(None) == tmp_path / "env"
    monkeypatch.delenv("HEAVYTAIL_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert resolve_data_dir(None) == tmp_path / "cache" / "heavytail"


@needs_shared
def test_verify_reads_shared_layout_as_is():
    statuses = {s.name: s for s in verify("mnist", SHARED)}
    assert statuses["t10k-images-idx3-ubyte.gz"].ok and statuses["t10k-labels-idx1-ubyte.gz"].ok
    assert not statuses["train-images-idx3-ubyte.gz"].present  # the training split is not shared
    assert dataset_file("mnist", "test-labels", SHARED) == SHARED / "mnist" / "t10k-labels-idx1-ubyte.gz"


@needs_shared
@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_file_is_one_line_error_naming_it(tmp_path, damage):
    (tmp_path / "mnist").mkdir()
    copy = tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"
    shutil.copy(SHARED / "mnist" / copy.name, copy)
    data = bytearray(copy.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[100] ^= 0xFF
    copy.write_bytes(bytes(data))
    with pytest.raises(DataError) as info:
        dataset_file("mnist", "test-labels", tmp_path)
    message = str(info.value)
    assert "\n" not in message and str(copy) in message
    assert ("size" in message) if damage == "truncate" else ("md5" in message)


def test_missing_file_and_offline_download_name_files_and_directory(tmp_path, monkeypatch, capsys):
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz not found"):
        dataset_file("mnist", "test-images", tmp_path)
    import urllib.request

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DataError) as info:
        download("mnist", tmp_path)
    assert "\n" not in str(info.value) and str(tmp_path / "mnist") in str(info.value)
    assert not list((tmp_path / "mnist").iterdir())  # nothing half-written
    assert main(["data", "download", "mnist", "--data-dir", str(tmp_path)]) == 2
    assert main(["data", "verify", "nosuch"]) == 2
    assert "choose one of: mnist" in capsys.readouterr().err


def test_catalogue_entries_are_checkable():
    """Every built-in dataset file names an md5 (or is checked through its archive) and https/http mirrors."""
    from heavytail.data import catalog  # noqa: F401  (registers the built-in datasets)
    from heavytail.data.datadir import dataset_names, get_dataset

    assert {"mnist", "ptb", "wikitext-2", "wikitext-103"} <= set(dataset_names())
    for name in dataset_names():
        for f in get_dataset(name).files:
            assert f.md5 is None or (len(f.md5) == 32 and int(f.md5, 16) >= 0), (name, f.name)
            assert all(url.startswith(("https://", "http://")) for url in f.urls), (name, f.name)
    assert get_dataset("mnist").file("test-images").md5 == "9fb629c4189551a2d022fa330f9573f3"  # the published checksum
