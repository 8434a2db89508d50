"""How long to wait before trying again: one rule for every delivery that retries (the
notifier's email, identity's back-channel logouts)."""

from __future__ import annotations

import random
from collections.abc import Callable


def backoff_delay(attempts: int, base: float, cap: float,
                  rng: Callable[[], float] = random.random) -> float:
    """Seconds before try ``attempts + 1``: base · 2^(attempts-1), capped, ±25 % jitter."""
    delay = min(cap, base * 2 ** max(attempts - 1, 0))
    return delay * (0.75 + 0.5 * rng())
