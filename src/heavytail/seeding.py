"""Independent random streams derived from one user seed.

Data and model initialisation must not share a stream: ``torch.rand`` and ``nn.Linear``'s init drawn
from generators seeded alike produce correlated numbers (weight row k would mirror sample k).
"""

from __future__ import annotations

import hashlib


def derive_seed(seed: int, purpose: str) -> int:
    """A 63-bit seed for ``purpose`` (e.g. "data", "model") that is independent of other purposes."""
    digest = hashlib.sha256(f"{seed}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1
