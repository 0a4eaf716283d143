"""Logging: readable lines to stderr (journald), JSON lines to a rotating file.

Libraries that log through the standard library (APScheduler, asyncio,
httpx, playwright) are routed into loguru so there is one stream and one
format.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from loguru import logger

if TYPE_CHECKING:
    from loguru import Record

from agentd.config import Settings

# journald adds its own timestamp; a level prefix is what it lacks. The
# "<N>" syslog prefix lets journald store the right priority.
_SYSLOG_PRIORITY = {
    "TRACE": 7,
    "DEBUG": 7,
    "INFO": 6,
    "SUCCESS": 5,
    "WARNING": 4,
    "ERROR": 3,
    "CRITICAL": 2,
}


# Libraries whose INFO lines are chatter: APScheduler says "Running job" and
# "executed successfully" for every run of every task (some 30 lines a minute,
# most of the log). They go out at DEBUG; the scheduler logs one INFO line per
# run itself, with its outcome and duration.
_CHATTY = ("apscheduler",)


class _InterceptHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        if record.levelno == logging.INFO and record.name.startswith(_CHATTY):
            level = "DEBUG"
        # Find the caller outside the logging module so loguru reports it.
        frame: FrameType | None = logging.currentframe()
        depth = 2
        while frame is not None and frame.f_code.co_filename == logging.__file__:
            frame = frame.f_back
            depth += 1
        logger.opt(depth=depth, exception=record.exc_info).log(level, record.getMessage())


def _stderr_format(record: Record) -> str:
    prio = _SYSLOG_PRIORITY.get(record["level"].name, 6)
    return f"<{prio}>{{level}}: {{message}}\n{{exception}}"


def setup_logging(settings: Settings, *, journald_prefix: bool | None = None) -> Path:
    """Configure loguru for the daemon; return the JSON log file's path.

    :raises OSError: the log folder cannot be created.
    """
    log_dir = settings.resolved_log_dir
    log_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
    path = log_dir / settings.log.file_name
    if journald_prefix is None:
        journald_prefix = "JOURNAL_STREAM" in os.environ
    logger.remove()
    if journald_prefix:
        logger.add(sys.stderr, level=settings.log.level, format=_stderr_format, colorize=False)
    else:
        logger.add(
            sys.stderr,
            level=settings.log.level,
            format="{time:YYYY-MM-DD HH:mm:ss.SSS} {level: <8} {message}",
            colorize=False,
        )
    logger.add(
        path,
        level=settings.log.level,
        serialize=True,
        rotation=settings.log.rotation,
        retention=settings.log.retention,
        enqueue=True,  # file I/O happens off the event loop
    )
    logging.basicConfig(handlers=[_InterceptHandler()], level=0, force=True)
    for noisy in ("aiosqlite", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return path


def shutdown_logging() -> None:
    """Flush queued log records and release the file."""
    logger.complete()
    logger.remove()
