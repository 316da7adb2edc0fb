"""One writer per directory: an operating-system file lock (``fcntl.flock``) on a lock file.

A run directory is written by one driver at a time (SPEC 10; ``docs/reliability.md``). The
driver takes :class:`DirectoryLock` before it touches the directory and keeps it until it
is done. The lock belongs to the open file, so the operating system releases it the moment
the holder exits, however it exits (``SIGKILL`` included): a lock is never stale. The lock
file records who holds it (process id, host, start time, command), so a refused driver can
say who is in the way.

The lock file is removed on release; a driver that was killed leaves it behind, and the
next driver simply takes it over (``flock`` succeeds on a file nobody holds).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import stat
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

#: the lock files this process holds (absolute path -> lock), so code running under a lock
#: (``clean_stale``) can check that it does
_HELD: dict[str, DirectoryLock] = {}

#: largest lock file read back for the holder's description
_MAX_HOLDER_BYTES = 64 * 1024


class LockHeld(ValueError):
    """Another process holds the directory's lock; ``holder`` is what its lock file says
    (``pid``, ``host``, ``started``, ``command``), or ``None`` when it cannot be read."""

    def __init__(self, message: str, holder: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.holder = holder


def read_holder(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The holder description written in the lock file ``path`` (``None`` if unreadable)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        data = os.read(fd, _MAX_HOLDER_BYTES)
    finally:
        os.close(fd)
    try:
        d = json.loads(data)
    except (ValueError, RecursionError):
        return None
    return d if isinstance(d, dict) else None


def describe_holder(holder: dict[str, Any] | None) -> str:
    """``"pid 1234 on host h, started 2025-01-01T12:00:00Z"`` (or ``"holder unknown"``)."""
    if not holder:
        return "holder unknown"
    return (f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}, started "
            f"{holder.get('started', '?')}")


class DirectoryLock:
    """An exclusive, non-blocking lock on ``directory`` through the file
    ``directory / name``.

    ``acquire`` raises :class:`LockHeld` (a ``ValueError``) naming the holder when another
    process has the lock, and ``ValueError`` when the lock file is not a regular file (a
    symbolic link, a FIFO). Use it as a context manager::

        with DirectoryLock(run_dir, "driver.lock", what="run directory"):
            ...  # the only writer of run_dir
    """

    def __init__(self, directory: str | os.PathLike[str], name: str = "driver.lock",
                 what: str = "directory") -> None:
        self.directory = Path(directory)
        self.path = self.directory / name
        self._key = _key(directory, name)
        self.what = what
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> DirectoryLock:
        """Take the lock now or raise :class:`LockHeld`; see the class docstring."""
        if self._fd is not None:
            return self
        key = self._key
        if key in _HELD:
            raise LockHeld(f"{self.directory}: this process already holds the {self.what}'s "
                           "lock", read_holder(self.path))
        for _ in range(100):  # retry only while the file is being replaced under us
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NONBLOCK
                             | getattr(os, "O_NOFOLLOW", 0) | os.O_CLOEXEC, 0o666)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise ValueError(f"{self.path}: the lock file is a symbolic link; remove "
                                     "it") from None
                raise ValueError(f"{self.path}: cannot open the lock file "
                                 f"({exc.strerror})") from None
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise ValueError(f"{self.path}: the lock file is not a regular file; remove it")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise  # pragma: no cover - a file system without locks
                holder = read_holder(self.path)
                raise LockHeld(f"{self.directory}: the {self.what} is in use by another altmarl "
                               f"process ({describe_holder(holder)}); wait for it to finish "
                               "or stop it (the operating system releases its lock when it "
                               "exits)", holder) from None
            # the holder we waited for may have removed the file as it released it
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        else:  # pragma: no cover - someone keeps replacing the file
            raise ValueError(f"{self.path}: the lock file keeps changing; cannot lock")
        os.set_blocking(fd, True)
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "command": " ".join(sys.argv)[:1000]}
        data = (json.dumps(info, sort_keys=True) + "\n").encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        os.fsync(fd)
        self._fd = fd
        _HELD[key] = self
        return self

    def release(self) -> None:
        """Remove the lock file and release the lock (no-op when not held)."""
        if self._fd is None:
            return
        _HELD.pop(self._key, None)
        try:
            os.unlink(self.path)  # before unlocking: a waiter then sees a new file
        except FileNotFoundError:
            pass
        finally:
            os.close(self._fd)  # releases the flock
            self._fd = None

    def __enter__(self) -> DirectoryLock:
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def holds_lock(directory: str | os.PathLike[str], name: str = "driver.lock") -> bool:
    """Whether this process holds the lock of ``directory`` (through :class:`DirectoryLock`)."""
    return _key(directory, name) in _HELD


def _key(directory: str | os.PathLike[str], name: str) -> str:
    return os.path.join(os.path.realpath(directory), name)


__all__ = ["DirectoryLock", "LockHeld", "describe_holder", "holds_lock", "read_holder"]
