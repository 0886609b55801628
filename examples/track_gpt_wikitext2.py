"""A small GPT on WikiText-2 with the per-group loss tracked in a plain PyTorch loop: SGD vs Adam.

Word-level tokens of the local WikiText-2 file (the vocabulary is every word in it, ids by frequency),
a 2-layer GPT in plain torch.nn, random windows as batches. A ``heavytail.GroupTracker`` per optimizer
adds each batch's per-token losses on the device and logs 10 frequency groups every ``--log-every``
steps to the store, as tracked runs named ``gpt-wikitext2``; the figure is ``heavytail plot
gpt-wikitext2`` (drawn here too). A few minutes on 2 CPU cores:

    python examples/track_gpt_wikitext2.py                  # ../shared/data/wikitext-2/valid.txt
    python examples/track_gpt_wikitext2.py --text wiki.train.tokens --steps 2000 --device cuda

Each optimizer runs at each of its step sizes (``--lr-sgd``, ``--lr-adam``, three by default); the
figure shows, per optimizer, the one with the lowest final training loss (seed 0 only: a short form of
the paper's protocol, which ``heavytail reproduce`` runs in full).
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import heavytail as ht
from heavytail.plots import figure_per_group, save_figure

DEFAULT_TEXT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "wikitext-2" / "valid.txt"


def word_tokens(path: Path, max_tokens: int | None = None) -> tuple[torch.Tensor, list[str]]:
    """Token ids of a whitespace-tokenized file (one ``<eos>`` per line; its first ``max_tokens``) and the
    vocabulary of those tokens, most frequent word first."""
    words = [w for line in path.read_text(encoding="utf-8").splitlines() for w in line.split() + ["<eos>"]]
    words = words[:max_tokens]
    vocabulary = [w for w, _ in Counter(words).most_common()]
    index = {w: i for i, w in enumerate(vocabulary)}
    return torch.tensor([index[w] for w in words]), vocabulary


class Block(nn.Module):
    """Pre-norm transformer block: causal self-attention, then a 4x MLP."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, w = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, w)
        x = x + self.proj(attended)
        return x + self.mlp(self.norm2(x))


class GPT(nn.Module):
    """Token and position embeddings, ``layers`` blocks, a final norm and an untied output layer."""

    def __init__(self, vocab: int, context: int, width: int = 128, layers: int = 2, heads: int = 4) -> None:
        super().__init__()
        self.token, self.position = nn.Embedding(vocab, width), nn.Embedding(context, width)
        self.blocks = nn.Sequential(*(Block(width, heads) for _ in range(layers)))
        self.norm, self.head = nn.LayerNorm(width), nn.Linear(width, vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.token(ids) + self.position(torch.arange(ids.shape[1], device=ids.device))
        return self.head(self.norm(self.blocks(x)))


def batches(tokens: torch.Tensor, context: int, batch_size: int, seed: int):
    """Endless random windows (inputs, next-token targets), the same sequence for every optimizer."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        starts = torch.randint(0, len(tokens) - context - 1, (batch_size,), generator=generator)
        window = torch.stack([tokens[s : s + context + 1] for s in starts.tolist()])
        yield window[:, :-1], window[:, 1:]


def train_one(
    name: str, make_optimizer, tokens: torch.Tensor, args: argparse.Namespace, store: ht.Store
) -> ht.RunRecord:
    """Train a fresh GPT (same seed for every optimizer) with the tracker in a plain loop; return its stored run."""
    torch.manual_seed(args.seed)
    vocab = int(tokens.max()) + 1
    model = GPT(vocab, args.context, args.width, args.layers).to(args.device)
    optimizer = make_optimizer(model.parameters())
    metadata = {"optimizer": name, "lr": optimizer.param_groups[0]["lr"], "steps": args.steps, "tokens": len(tokens)}
    tracker = ht.GroupTracker.from_labels(
        tokens, num_classes=vocab, name="gpt-wikitext2", metadata=metadata, store=store
    )
    start = time.perf_counter()
    with tracker:
        for step, (x, y) in enumerate(batches(tokens, args.context, args.batch_size, args.seed)):
            if step > args.steps:
                break
            x, y = x.to(args.device), y.to(args.device)
            logits = model(x)
            losses = F.cross_entropy(logits.flatten(0, -2), y.flatten(), reduction="none")
            tracker.update(losses, y)  # before the step: the row at step s holds the losses of iterates s-k+1..s
            if step % args.log_every == 0:
                row = tracker.log(step)
                print(
                    f"{name:>4} step {step:4d}  loss {row['loss']:.3f}  groups "
                    f"{' '.join(f'{v:.2f}' for v in row['group_loss'])}  {time.perf_counter() - start:.0f} s",
                    flush=True,
                )
            if step < args.steps:
                losses.mean().backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
    return store.load(tracker.run_id)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--text", type=Path, default=DEFAULT_TEXT, help=f"WikiText-2 tokens file (default: {DEFAULT_TEXT})"
    )
    parser.add_argument(
        "--max-tokens", type=int, default=40_000, help="train on the first N tokens, so rare words recur (0: all)"
    )
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--context", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument(
        "--lr-sgd", type=float, nargs="+", default=[0.1, 0.3, 1.0], help="SGD, momentum 0.9: step sizes"
    )
    parser.add_argument(
        "--lr-adam", type=float, nargs="+", default=[1e-3, 3e-3, 1e-2], help="Adam (0.9, 0.999): step sizes"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (1 is faster on a busy machine)")
    parser.add_argument("--results", default=None, help="store (default: $HEAVYTAIL_RESULTS or ./heavytail-results)")
    parser.add_argument(
        "--out", default=None, help="figure path without suffix (default: RESULTS/figures/gpt-wikitext2)"
    )
    args = parser.parse_args(argv)
    if not args.text.exists():
        raise SystemExit(
            f"no WikiText-2 file at {args.text}; pass --text PATH (wiki.valid.tokens or wiki.train.tokens)"
        )

    if args.threads:
        torch.set_num_threads(args.threads)
    tokens, vocabulary = word_tokens(args.text, args.max_tokens or None)
    print(
        f"{args.text}: {len(tokens)} tokens, {len(vocabulary)} words; GPT {args.layers} layers, width {args.width}, "
        f"context {args.context}, {args.batch_size} windows a step, {args.steps} steps",
        flush=True,
    )
    store = ht.Store(args.results)
    optimizers = {
        "sgd": (args.lr_sgd, lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=0.9)),
        "adam": (args.lr_adam, lambda params, lr: torch.optim.Adam(params, lr=lr)),
    }
    chosen = []
    for name, (lrs, make) in optimizers.items():
        runs = [train_one(name, lambda params, lr=lr, make=make: make(params, lr), tokens, args, store) for lr in lrs]
        best = min(runs, key=lambda r: r.history.loss[-1] if np.isfinite(r.history.loss[-1]) else np.inf)
        print(
            f"{name}: final loss by lr "
            + ", ".join(f"{r.spec.metadata['lr']:g}: {r.history.loss[-1]:.3f}" for r in runs)
            + f"; lowest at lr {best.spec.metadata['lr']:g}",
            flush=True,
        )
        chosen.append(best)
    title = f"GPT ({args.layers} layers) on {len(tokens) // 1000}k WikiText-2 words: loss per frequency group"
    out = args.out or store.root / "figures" / "gpt-wikitext2"
    labels = [f"{r.spec.metadata['optimizer']}, lr={r.spec.metadata['lr']:g}" for r in chosen]
    paths = save_figure(figure_per_group(chosen, 10, title=title, labels=labels), out)
    print("figure:", ", ".join(map(str, paths)))


if __name__ == "__main__":
    main()
