"""The ``--storage`` option: what it may be, and opening it with errors that say what to do.

``--storage`` takes what optuna-dashboard takes, so the commands the CLI prints work as shown:

* a database URL: ``sqlite:///optuna-nars.db``, ``postgresql://user@host/db``,
  ``mysql+pymysql://user@host/db``, ... A URL naming no driver (``postgresql://``) gets one
  that is installed: SQLAlchemy's default for the database when it is installed (psycopg for
  PostgreSQL since SQLAlchemy 2.1), else another (psycopg2, ...), so the URL forms of the
  PostgreSQL and MySQL documentation work whichever driver ``pip`` installed;
* ``redis://...``: a JournalStorage on Redis;
* a path (no ``scheme://``): a JournalStorage file, an existing one, or a new one whose name ends
  in ``.log``. A path to an SQLite file, or a new one not ending in ``.log``, is refused with
  the ``sqlite:///`` URL to use instead.

Mistakes in the text itself are :class:`UsageError` (exit code 2); a missing driver, a server
that does not answer or a missing file are :class:`CLIError` (exit code 1).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from optuna_nars.cli._errors import CLIError, UsageError

if TYPE_CHECKING:  # imported when used: the parser's --help stays fast
    from optuna.storages import BaseStorage
    from sqlalchemy.engine import URL

__all__ = ["display_url", "open_storage", "resolve_storage"]

# Drivers SQLAlchemy knows for a database, tried in this order when SQLAlchemy's default for a
# bare ``<database>://`` URL is not installed.
_DRIVERS = {
    "postgresql": ("psycopg", "psycopg2", "pg8000"),
    "mysql": ("mysqldb", "pymysql", "mysqlconnector"),
    "mariadb": ("mysqldb", "pymysql", "mysqlconnector"),
}
_INSTALL = {
    "postgresql": "pip install psycopg2-binary (or 'psycopg[binary]')",
    "mysql": "pip install pymysql",
    "mariadb": "pip install pymysql",
}
_SQLITE_HEADER = b"SQLite format 3\x00"
_JOURNAL_SUFFIX = ".log"


def _is_redis(text: str) -> bool:
    return text.startswith(("redis://", "rediss://", "unix://"))


def _driver_installed(url: URL) -> bool:
    try:
        url.get_dialect().import_dbapi()
    except ImportError:
        return False
    return True


def _resolve_database_url(text: str) -> str:
    """A database URL with an installed driver, or the error saying what is wrong."""
    import sqlalchemy.engine
    import sqlalchemy.exc

    try:
        url = sqlalchemy.engine.make_url(text)
        url.get_dialect()
    except sqlalchemy.exc.NoSuchModuleError:
        raise UsageError(f"--storage {text!r}: unknown database {text.split(':', 1)[0]!r}; use "
                         "e.g. sqlite:///optuna-nars.db, postgresql://user@host/db, "
                         "mysql+pymysql://user@host/db or redis://host:6379.") from None
    except (sqlalchemy.exc.ArgumentError, ValueError) as err:
        raise UsageError(f"--storage {text!r} is not a valid database URL ({err}).") from None
    if _driver_installed(url):
        return text
    backend, driver = url.get_backend_name(), url.get_driver_name()
    installed = [d for d in _DRIVERS.get(backend, ())
                 if _driver_installed(url.set(drivername=f"{backend}+{d}"))]
    if installed and "+" not in url.drivername:
        # A bare URL: the documented form; use the driver that is there.
        return url.set(drivername=f"{backend}+{installed[0]}").render_as_string(
            hide_password=False)
    other = f", or use {backend}+{installed[0]}:// (installed)" if installed else ""
    install = _INSTALL.get(backend, f"install the Python driver {driver!r}")
    raise CLIError(f"--storage {display_url(text)!r}: the {driver} driver for {backend} is not "
                   f"installed: {install}{other}.")


def _resolve_path(text: str) -> str:
    """A JournalStorage file, or the error naming the URL to use instead."""
    path = Path(text).expanduser()
    sqlite = f"sqlite:///{text}"
    if path.is_file():
        with path.open("rb") as f:
            if f.read(len(_SQLITE_HEADER)) == _SQLITE_HEADER:
                raise UsageError(f"--storage {text!r} is an SQLite database: write it as the "
                                 f"URL {sqlite!r}.")
        return text
    if path.suffix == _JOURNAL_SUFFIX:
        return text
    raise UsageError(f"--storage {text!r} is neither a URL nor an existing journal file: for an "
                     f"SQLite database write {sqlite!r}; for a new JournalStorage file give a "
                     f"path ending in {_JOURNAL_SUFFIX!r}.")


def resolve_storage(text: str) -> str:
    """``--storage`` as it will be opened (a bare database URL gets an installed driver)."""
    if _is_redis(text):
        return text
    if "://" in text:
        return _resolve_database_url(text)
    return _resolve_path(text)


def display_url(text: str) -> str:
    """``text`` with any password hidden, for messages."""
    if "://" not in text:
        return text
    try:
        import sqlalchemy.engine

        return sqlalchemy.engine.make_url(text).render_as_string(hide_password=True)
    except Exception:  # not a database URL (redis://...): shown as given
        return text


def _hint(err: Exception) -> str:
    """What to check for a storage that would not open."""
    kind = type(err).__name__
    if kind == "OperationalError" and "sqlite" in type(err).__module__ + str(err):
        return " Does the file's directory exist, and may you write there?"
    if kind == "OperationalError" or "ConnectionError" in kind or "Timeout" in kind:
        return (" Is the server running and reachable at that address, and do the database "
                "and user exist?")
    return ""


def _open(url: str) -> BaseStorage:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalRedisBackend

    if _is_redis(url):
        with warnings.catch_warnings():  # the user chose it; Optuna's "experimental" is noise
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return JournalStorage(JournalRedisBackend(url))
    if "://" not in url:
        return JournalStorage(JournalFileBackend(str(Path(url).expanduser())))
    return optuna.storages.get_storage(url)


def open_storage(url: str, *, must_exist: bool = False) -> BaseStorage:
    """Open a resolved ``--storage`` (see :func:`resolve_storage`); every failure becomes a
    :class:`CLIError`.

    With ``must_exist``, an SQLite or journal file that does not exist is an error rather than
    created empty (reading commands should not leave a stray file behind a typo).
    """
    path = None
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):].split("?", 1)[0]
        path = None if path in ("", ":memory:") else path
    elif "://" not in url:
        path = url
    if must_exist and path is not None and not Path(path).expanduser().is_file():
        what = "journal" if "://" not in url else "database"
        raise CLIError(f"cannot open storage {url!r}: no such {what} file {path!r}.")
    try:
        return _open(url)
    except Exception as err:  # storages raise many kinds; all mean "cannot open it"
        text = str(err).strip()
        first = text.splitlines()[0] if text else type(err).__name__
        if first.startswith("(") and ") " in first:  # SQLAlchemy's "(driver.Error) " prefix
            first = first.split(") ", 1)[1]
        raise CLIError(f"cannot open storage {display_url(url)!r}: {first.rstrip('.')}."
                       f"{_hint(err)}"
                       ) from None
