"""Throughput of ``heavytail stats``' word tokenizer + counting, against plain ``str.split`` + ``Counter``.

Builds a corpus by repeating the local WikiText-2 valid and test files to at least ``--megabytes``
(default 50) and times, interleaved after a warm-up round, median over ``--repeats``:

* ours: ``WordTokenizer().count_file`` (full basic_english rules, streamed in 1 MiB chunks);
* baseline: the file read as text in 1 MiB chunks of lines, ``str.split`` + ``Counter.update``
  (no lower-casing, no punctuation rules).

Goal: ours / baseline throughput (tokens/s, each counting its own tokens) >= 1. It also checks that
ours gives exactly the counts of torchtext's rule list (``basic_english_reference``) on the two
files, and that peak memory does not grow with the file: each size (``--megabytes`` and twice that)
is counted in a fresh process that reports the peak of its Python allocations while counting
(tracemalloc; numpy and torch are not involved in counting).

Run:  python bench/tokenize_throughput.py [--megabytes 50] [--repeats 3] [--data-dir ../shared/data] [--check]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from heavytail.data.datadir import dataset_file
from heavytail.data.text import WordTokenizer
from heavytail.data.tokenizers import basic_english_reference

CHILD = """
import sys, tracemalloc
from collections import Counter
from pathlib import Path
from heavytail.data.text import WordTokenizer
tracemalloc.start()
n = WordTokenizer().count_file(Path(sys.argv[1]), Counter())
print(n, tracemalloc.get_traced_memory()[1])
"""


def baseline(path: Path) -> int:
    counts: Counter[str] = Counter()
    with open(path, encoding="utf-8") as f:
        while lines := f.readlines(1 << 20):
            counts.update("".join(lines).split())
    return sum(counts.values())


def ours(path: Path) -> int:
    return WordTokenizer().count_file(path, Counter())


def build_corpus(sources: list[Path], megabytes: float, target: Path) -> int:
    block = b"".join(p.read_bytes() for p in sources)
    repeats = int(megabytes * 1e6 // len(block)) + 1
    with open(target, "wb") as f:
        for _ in range(repeats):
            f.write(block)
    return repeats * len(block)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args()

    sources = [dataset_file("wikitext-2", split, args.data_dir) for split in ("valid", "test")]
    exact = True
    for path in sources:
        counts: Counter[str] = Counter()
        WordTokenizer().count_file(path, counts)
        expected: Counter[str] = Counter()
        with open(path, encoding="utf-8") as f:
            for line in f:
                expected.update(basic_english_reference(line))
        exact &= counts == expected
    print(f"counts equal to torchtext's rule list on {', '.join(p.name for p in sources)}: {exact}")

    with tempfile.TemporaryDirectory() as tmp:
        path, double = Path(tmp) / "corpus.txt", Path(tmp) / "corpus2.txt"
        size = build_corpus(sources, args.megabytes, path)
        size2 = build_corpus(sources, 2 * args.megabytes, double)
        times: dict[str, list[float]] = {"ours": [], "baseline": []}
        tokens: dict[str, int] = {}
        for round_ in range(args.repeats + 1):  # round 0 warms the page cache
            for name, fn in (("ours", ours), ("baseline", baseline)):
                start = time.perf_counter()
                tokens[name] = fn(path)
                if round_:
                    times[name].append(time.perf_counter() - start)
        rate = {name: tokens[name] / statistics.median(t) for name, t in times.items()}
        print(f"corpus: {size / 1e6:.1f} MB (WikiText-2 valid+test repeated)")
        for name in ("ours", "baseline"):
            print(f"  {name:<9} {tokens[name]:>11,} tokens  {statistics.median(times[name]):6.2f} s  {rate[name] / 1e6:6.2f} M tokens/s")
        ratio = rate["ours"] / rate["baseline"]
        print(f"throughput ratio ours / baseline: {ratio:.2f}  (goal >= 1)")
        peaks = []
        for p, s in ((path, size), (double, size2)):
            out = subprocess.run([sys.executable, "-c", CHILD, str(p)], capture_output=True, text=True, check=True).stdout.split()
            peaks.append(int(out[1]) / 2**20)
            print(f"  peak Python memory while counting a {s / 1e6:6.1f} MB file: {peaks[-1]:6.1f} MiB")
        growth = peaks[1] - peaks[0]
        print(f"peak memory growth when the file doubles: {growth:+.1f} MiB (goal: independent of file size)")
    ok = exact and ratio >= 1 and growth < 0.1 * args.megabytes
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    raise SystemExit(main())
