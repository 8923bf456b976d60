"""Step-by-step progress lines on stderr for slow model preparation."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["StepReporter"]


class StepReporter:
    """Prints ``<label>: <step> ...`` and ``... done in 1.2 s`` lines; silent when disabled.

    While disabled it also switches off the transformers progress bars for the duration of a
    step, so library output follows the same switch.
    """

    def __init__(self, label: str, *, enabled: bool = True) -> None:
        self.label = label
        self.enabled = enabled

    def note(self, message: str) -> None:
        if self.enabled:
            print(f"{self.label}: {message}", file=sys.stderr, flush=True)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        self.note(f"{name} ...")
        started = time.perf_counter()
        with _transformers_bars(self.enabled):
            yield
        self.note(f"{name} done in {time.perf_counter() - started:.1f} s")


@contextmanager
def _transformers_bars(enabled: bool) -> Iterator[None]:
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    if enabled == was_enabled:
        yield
        return
    (hf_logging.enable_progress_bar if enabled else hf_logging.disable_progress_bar)()
    try:
        yield
    finally:
        (hf_logging.enable_progress_bar if was_enabled else hf_logging.disable_progress_bar)()
