"""The shell's one source of time, passed in so that a test can drive it."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Wall time, for what the API shows (status times, deadlines)."""
        ...

    def monotonic(self) -> float:
        """Seconds that never go back, for rates (the queue's write budget)."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()
