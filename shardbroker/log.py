"""Logging set-up shared by every process, in nats-server's line format:

    [pid] 2026/11/23 05:47:06.123456 [INF] message

Quiet by default: startup and shutdown lines at INF, connection events at DBG (-D),
protocol traces at TRC (-V). Shards log to the same stream as the supervisor.
"""

from __future__ import annotations

import logging
import sys
import time

TRACE = 5
logging.addLevelName(TRACE, "TRC")
_LEVEL_TAGS = {
    TRACE: "TRC",
    logging.DEBUG: "DBG",
    logging.INFO: "INF",
    logging.WARNING: "WRN",
    logging.ERROR: "ERR",
    logging.CRITICAL: "FTL",
}


class _NatsFormatter(logging.Formatter):
    def __init__(self, logtime: bool) -> None:
        super().__init__()
        self.logtime = logtime

    def format(self, record: logging.LogRecord) -> str:
        tag = _LEVEL_TAGS.get(record.levelno, record.levelname)
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        if not self.logtime:
            return f"[{record.process}] [{tag}] {message}"
        stamp = time.strftime("%Y/%m/%d %H:%M:%S", time.localtime(record.created))
        micros = int((record.created % 1) * 1_000_000)
        return f"[{record.process}] {stamp}.{micros:06d} [{tag}] {message}"


def setup(
    log_file: str = "", debug: bool = False, trace: bool = False, logtime: bool = True
) -> None:
    """Configure the root logger of this process."""
    level = TRACE if trace else logging.DEBUG if debug else logging.INFO
    handler: logging.Handler = (
        logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    )
    handler.setFormatter(_NatsFormatter(logtime))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
