"""One data-directory rule for every dataset, and checked, atomic downloads.

The data directory is ``--data-dir DIR``, else ``$HEAVYTAIL_DATA``, else ``$XDG_CACHE_HOME/heavytail``
(``~/.cache/heavytail``). A dataset's files live under ``DATA_DIR/NAME/`` by their standard names,
so ``--data-dir ../shared/data`` (``mnist/t10k-images-idx3-ubyte.gz``, ``ptb/ptb.valid.txt``, ...)
works as it is. Datasets register their files (name, size, md5, mirrors) here; ``heavytail data
verify`` and ``heavytail data download`` work on every registered dataset alike.
"""

from __future__ import annotations

import hashlib
import os
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from heavytail.options import ConfigError

DATA_ENV = "HEAVYTAIL_DATA"


class DataError(ConfigError):
    """A dataset file that is missing, truncated or corrupted, or could not be downloaded (one line)."""


def default_data_dir() -> Path:
    """``$XDG_CACHE_HOME/heavytail``, else ``~/.cache/heavytail``."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "heavytail"


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The data directory: ``data_dir`` if given, else ``$HEAVYTAIL_DATA``, else the cache default."""
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser()
    return Path(os.environ.get(DATA_ENV) or default_data_dir()).expanduser()


@dataclass(frozen=True)
class DataFile:
    """One file of a dataset: its standard name, size in bytes, md5, and where it can be downloaded.

    ``aliases`` are other names accepted for the same content (e.g. ``test.txt`` for
    ``wiki.test.tokens``); ``split`` says which split the file holds (``train``, ``test``, ...).
    """

    name: str
    md5: str | None
    size: int | None = None
    urls: tuple[str, ...] = ()
    split: str = ""
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Dataset:
    """A named dataset: its files under ``DATA_DIR/directory`` (``directory`` defaults to the name)."""

    name: str
    description: str
    files: tuple[DataFile, ...]
    directory: str = ""
    fetch: Callable[[Dataset, Path], None] | None = field(default=None, compare=False)  # custom download (archives)

    @property
    def subdir(self) -> str:
        return self.directory or self.name

    def file(self, name_or_split: str) -> DataFile:
        """The file called ``name_or_split`` (or holding that split); a one-line error naming the choices."""
        for f in self.files:
            if name_or_split in (f.name, f.split, *f.aliases):
                return f
        choices = ", ".join(f.split or f.name for f in self.files)
        raise ConfigError(f"dataset {self.name!r} has no file or split {name_or_split!r}; choose one of: {choices}")


_DATASETS: dict[str, Dataset] = {}


def register_dataset(dataset: Dataset) -> Dataset:
    """Make ``dataset`` known to ``heavytail data`` and :func:`dataset_file`."""
    _DATASETS[dataset.name] = dataset
    return dataset


def dataset_names() -> list[str]:
    _load_builtin_datasets()
    return sorted(_DATASETS)


def get_dataset(name: str) -> Dataset:
    _load_builtin_datasets()
    try:
        return _DATASETS[name]
    except KeyError:
        raise ConfigError(f"unknown dataset {name!r}; choose one of: {', '.join(sorted(_DATASETS))}") from None


def _load_builtin_datasets() -> None:
    """Import the modules that register the built-in datasets (they import this module, so not at the top)."""
    import heavytail.data.catalog  # noqa: F401


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class FileStatus:
    """What :func:`verify` found for one file: where it looked, and whether size and md5 match."""

    name: str
    path: Path
    present: bool
    size: int | None
    ok: bool
    problem: str  # empty when ok

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "path": str(self.path), "present": self.present, "size": self.size, "ok": self.ok, "problem": self.problem}


def locate(dataset: Dataset, file: DataFile, data_dir: Path) -> Path:
    """Where ``file`` is (its standard name or an alias) under ``data_dir``; the standard path if absent."""
    folder = data_dir / dataset.subdir
    for name in (file.name, *file.aliases):
        if (folder / name).is_file():
            return folder / name
    return folder / file.name


def check_file(file: DataFile, path: Path) -> FileStatus:
    """Size and md5 of ``path`` against what ``file`` declares."""
    if not path.is_file():
        return FileStatus(file.name, path, False, None, False, "missing")
    size = path.stat().st_size
    if file.size is not None and size != file.size:
        return FileStatus(file.name, path, True, size, False, f"size {size:,} B, expected {file.size:,} B (truncated or a different file)")
    if file.md5 is not None and (digest := md5sum(path)) != file.md5:
        return FileStatus(file.name, path, True, size, False, f"md5 {digest}, expected {file.md5} (corrupted or a different file)")
    return FileStatus(file.name, path, True, size, True, "")


def verify(dataset: str | Dataset, data_dir: str | os.PathLike[str] | None = None) -> list[FileStatus]:
    """Check every file of ``dataset`` in the data directory (presence, size, md5)."""
    ds = get_dataset(dataset) if isinstance(dataset, str) else dataset
    root = resolve_data_dir(data_dir)
    return [check_file(f, locate(ds, f, root)) for f in ds.files]


def how_to_get(dataset: Dataset, files: Iterable[DataFile], data_dir: Path) -> str:
    """The one-line hint that names the files, where they go and the download command."""
    names = ", ".join(f.name for f in files)
    return (
        f"put {names} in {data_dir / dataset.subdir}/ (or point --data-dir / ${DATA_ENV} at a directory holding "
        f"{dataset.subdir}/), or run `heavytail data download {dataset.name}` on a networked machine"
    )


def dataset_file(dataset: str | Dataset, name_or_split: str, data_dir: str | os.PathLike[str] | None = None, *, check: bool = True) -> Path:
    """Path of one file of a dataset, verified (size, md5) unless ``check=False``; a one-line error otherwise.

    Nothing is downloaded here: a missing or damaged file names itself, what was expected and how to get it.
    """
    ds = get_dataset(dataset) if isinstance(dataset, str) else dataset
    root = resolve_data_dir(data_dir)
    file = ds.file(name_or_split)
    path = locate(ds, file, root)
    if not path.is_file():
        raise DataError(f"{ds.name} file {path} not found; {how_to_get(ds, [file], root)}")
    if check:
        status = check_file(file, path)
        if not status.ok:
            raise DataError(f"{ds.name} file {path} is damaged: {status.problem}; replace it ({how_to_get(ds, [file], root)})")
    return path


def _fetch_url(url: str, target: Path, expected: DataFile, timeout: float = 30.0) -> None:
    """Download ``url`` to a temporary sibling of ``target``, check it, and rename it into place."""
    tmp = target.with_name(f".{target.name}.{socket.gethostname()}.{os.getpid()}.download")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
            while block := response.read(1 << 20):
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
        status = check_file(expected, tmp)
        if not status.ok:
            raise DataError(f"download of {url} failed its check: {status.problem}")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def download(dataset: str | Dataset, data_dir: str | os.PathLike[str] | None = None, *, only: Iterable[str] | None = None) -> list[FileStatus]:
    """Fetch the files of ``dataset`` that are missing or damaged, verified and written atomically.

    Tries each mirror in turn; when none answers (offline), one :class:`DataError` line names the
    files still needed and the directory to put them in. Files already present and correct are kept.
    """
    ds = get_dataset(dataset) if isinstance(dataset, str) else dataset
    root = resolve_data_dir(data_dir)
    wanted = [f for f in ds.files if only is None or f.name in only or f.split in only]
    needed = [f for f in wanted if not check_file(f, locate(ds, f, root)).ok]
    if needed:
        (root / ds.subdir).mkdir(parents=True, exist_ok=True)
    if needed and ds.fetch is not None:
        ds.fetch(ds, root)
        needed = [f for f in needed if not check_file(f, locate(ds, f, root)).ok]
    failed: list[tuple[DataFile, str]] = []
    for f in needed:
        errors = []
        for url in f.urls:
            try:
                _fetch_url(url, root / ds.subdir / f.name, f)
                break
            except (urllib.error.URLError, OSError, DataError) as exc:
                errors.append(f"{url}: {getattr(exc, 'reason', exc)}")
        else:
            failed.append((f, "; ".join(errors) or "no download address known"))
    if failed:
        raise DataError(f"could not download {ds.name} ({failed[0][1]}); {how_to_get(ds, [f for f, _ in failed], root)}")
    return verify(ds, root)


def fetch_archive(dataset: Dataset, data_dir: Path, *, archive: DataFile) -> None:
    """Download a zip ``archive`` (checked) and extract the dataset's files from it, each renamed into place.

    Members are matched by base name (``wikitext-2/wiki.train.tokens`` -> ``wiki.train.tokens``); the
    archive itself is deleted afterwards. Offline: one :class:`DataError` line, nothing half-written.
    """
    import zipfile

    folder = data_dir / dataset.subdir
    zipped = folder / f".{archive.name}.{socket.gethostname()}.{os.getpid()}"
    errors = []
    try:
        for url in archive.urls:
            try:
                _fetch_url(url, zipped, archive)
                break
            except (urllib.error.URLError, OSError, DataError) as exc:
                errors.append(f"{url}: {getattr(exc, 'reason', exc)}")
        else:
            raise DataError(f"could not download {archive.name} ({'; '.join(errors)}); {how_to_get(dataset, dataset.files, data_dir)}")
        wanted = {f.name for f in dataset.files}
        with zipfile.ZipFile(zipped) as zf:
            for member in zf.infolist():
                name = Path(member.filename).name
                if name not in wanted:
                    continue
                tmp = folder / f".{name}.{os.getpid()}.extract"
                try:
                    with zf.open(member) as src, open(tmp, "wb") as out:
                        while block := src.read(1 << 20):
                            out.write(block)
                    os.replace(tmp, folder / name)
                finally:
                    tmp.unlink(missing_ok=True)
    finally:
        zipped.unlink(missing_ok=True)
