"""loguru set-up shared by the processes: one stderr sink, a process label in every line."""

from __future__ import annotations

import sys

from loguru import logger

__all__ = ["setup_logging"]


def setup_logging(level: str, process: str) -> None:
    """Replace loguru's default sink with one that labels lines with ``process``."""
    logger.remove()
    logger.configure(extra={"process": process})
    logger.add(
        sys.stderr,
        level=level,
        format="<green>{time:HH:mm:ss.SSS}</green> <level>{level: <7}</level> <cyan>{extra[process]}</cyan> {message}",
        backtrace=False,
        diagnose=False,
    )
