"""The built-in datasets' files: standard names, sizes, md5 checksums and download mirrors."""

from __future__ import annotations

from heavytail.data.datadir import DataFile, Dataset, register_dataset

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
