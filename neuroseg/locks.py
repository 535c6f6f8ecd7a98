"""Exclusive locks on files and folders, so two runs never write the same target at once.

An flock, not a lock file's mere existence: the kernel drops it when its holder dies.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from neuroseg.errors import PathTakenError

UNLOCKABLE = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS)  # flock unsupported by the filesystem
_HELD: dict[Path, int] = {}  # lock files this process holds, and how many blocks hold each

log = logging.getLogger(__name__)


@contextmanager
def hold_lock(lock_path: Path, what: str, wait: bool = False) -> Iterator[None]:
    """Hold an exclusive flock on `lock_path` (created, holding our PID) while the block runs.

    The kernel drops an flock when its holder dies, however it dies (kill -9 included), so a
    lock left by a killed run is free again: the next run takes it over with no PID guessing and
    no stale-lock timeout. Another live holder makes this raise at once naming its PID (or, with
    `wait`, block until it is done). Nested blocks in one process share the lock. The file is
    removed on release.
    """
    lock_path = Path(lock_path).absolute()
    if lock_path in _HELD:  # this process holds it already (prepare, then its atomic_dir)
        _HELD[lock_path] += 1
        try:
            yield
        finally:
            _HELD[lock_path] -= 1
        return
    fd = _take_lock(lock_path, what, wait)
    if fd is None:
        yield
        return
    try:
        previous = _lock_holder(fd)
        if previous:  # the file outlived its holder: that run was killed
            log.warning("%s: taking over the lock left by PID %s, which has ended", what, previous)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _HELD[lock_path] = 1
        yield
    finally:
        _HELD.pop(lock_path, None)
        lock_path.unlink(missing_ok=True)
        os.close(fd)


def _take_lock(lock_path: Path, what: str, wait: bool) -> int | None:
    """An open descriptor holding the flock on the file now at `lock_path`; None (after a
    warning) where the filesystem has no locks. PathTakenError while another run holds it,
    unless `wait`."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _lock_holder(fd)
            if not wait:
                os.close(fd)
                raise PathTakenError(
                    f"{what}: in use by another run (PID {holder}, lock {lock_path}); wait for "
                    f"it to finish, or stop it (kill {holder}) and run again"
                ) from None
            log.info("%s: waiting for PID %s to finish with it", what, holder)
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as error:
            if error.errno not in UNLOCKABLE:
                raise
            # Some cluster filesystems (Lustre without -o flock) have no locks: run on, but say so.
            os.close(fd)
            lock_path.unlink(missing_ok=True)
            log.warning("%s: no file locks on this filesystem (%s); running unlocked", what, error)
            return None
        # The previous holder removes the file on release: a lock taken on a removed file
        # guards nothing, so take it again on the file now at that path.
        try:
            current = os.stat(lock_path)
            stat = os.fstat(fd)
            if (current.st_dev, current.st_ino) == (stat.st_dev, stat.st_ino):
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def _lock_holder(fd: int) -> str:
    """The PID written in an open lock file, or "" (a lock being set up holds none yet)."""
    return os.pread(fd, 32, 0).decode(errors="replace").strip()


def dir_lock(path: Path, wait: bool = False) -> AbstractContextManager[None]:
    """Exclusive lock on folder `path` (existing or not), held in its sibling `.<name>.lock`.

    The lock file sits next to the folder, not in it, because io.atomic_dir replaces the folder.
    """
    path = Path(path)
    return hold_lock(path.with_name(f".{path.name}.lock"), str(path), wait)
