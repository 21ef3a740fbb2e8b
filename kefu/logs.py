"""Logging of kefu's processes, configured by entry points only (libraries never configure it).

Every line goes through :class:`kefu.privacy.MaskingFormatter`, so a shopper's phone or ID
number that reaches a log message (a question, a traceback) is masked there.
"""

from __future__ import annotations

import logging.config
from typing import Any

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_config(level: str = "INFO") -> dict[str, Any]:
    """A :func:`logging.config.dictConfig` dict: masked lines to stderr, uvicorn's included."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"masked": {"()": "kefu.privacy.MaskingFormatter", "fmt": FORMAT}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "masked",
                                "stream": "ext://sys.stderr"}},
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True, "level": level},
            "uvicorn.error": {"handlers": [], "propagate": True, "level": level},
            "uvicorn.access": {"handlers": [], "propagate": True, "level": "WARNING"},
        },
    }


def configure(level: str = "INFO") -> None:
    """Configure the process's logging with :func:`log_config` (call once, from ``main``)."""
    logging.config.dictConfig(log_config(level))
