"""The run lock: one nmt-train process at a time writes a run directory.

`RUN/.lock` holds the writer's pid, host and start time, and the writer holds an exclusive
`flock` on it for as long as it runs. The kernel drops a flock when its process ends, however
it ends (SIGKILL included), so a lock left by a dead process is never mistaken for a live one:
the next nmt-train finds the file unlocked, warns that its holder ended without releasing it,
and takes it over. A second process started while the first runs is refused, naming the
holder. On a file system without flock (some network mounts), the pid and host in the file
decide: a holder on this host that is no longer running is taken over, any other refuses.

nmt-train takes the lock (nmt/cli/train.py); under torchrun, rank 0 alone does.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from nmt.errors import RunDirError
from nmt.rundir import RunDir

try:
    import fcntl
except ImportError:  # Windows: the pid and host in the file decide alone
    fcntl = None

log = logging.getLogger(__name__)
_NO_FLOCK = (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS)


def _record(fd: int) -> dict:
    """What a lock file says of its holder ({} if empty or not nmt's)."""
    os.lseek(fd, 0, os.SEEK_SET)
    try:
        data = json.loads(os.read(fd, 4096).decode("utf-8", "replace"))
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _describe(holder: dict) -> str:
    return (
        f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, "
        f"since {holder.get('started', '?')}"
    )


def _running_here(holder: dict) -> bool:
    """Whether the holder is a process of this host that is still running (not us)."""
    pid = holder.get("pid")
    if holder.get("host") != socket.gethostname() or not isinstance(pid, int):
        return holder.get("host") is not None  # another host's: cannot tell, so assume so
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # running, as another user
        return True
    return True


class RunLock:
    """Hold `RUN/.lock` while training writes RUN; refuse if another process holds it.

    As a context manager: taken on entry, released (the file removed) on exit, normally or
    by an exception, Ctrl-C and SIGTERM included: while it is held, a SIGTERM that would kill
    the process at once (its default action, before the training loop installs its own
    handler) exits it with status 143 through the normal path instead.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = RunDir(run_dir).lock_path
        self._fd: int | None = None
        self._sigterm: object = None

    def __enter__(self) -> RunLock:
        self.acquire()
        main = threading.current_thread() is threading.main_thread()
        if main and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            self._sigterm = signal.signal(signal.SIGTERM, _exit_on_sigterm)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._sigterm is not None:
            signal.signal(signal.SIGTERM, self._sigterm)
            self._sigterm = None
        self.release()

    def acquire(self) -> None:
        """Take the lock, or raise RunDirError naming the process that holds it."""
        while self._fd is None:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as err:
                raise RunDirError(
                    f"{self.run_dir}: {err.strerror}: nmt-train cannot write its lock file "
                    f"{self.path.name} there; make the directory writable, or train in another "
                    "hydra.run.dir"
                ) from None
            try:
                taken = self._take(fd)
            except BaseException:
                os.close(fd)
                raise
            if taken:
                self._fd = fd
            else:  # the file we locked was removed by its releasing holder: lock the new one
                os.close(fd)

    def _take(self, fd: int) -> bool:
        """Lock fd (the lock file) and write our record in it; False if fd is stale."""
        flock = fcntl is not None
        if flock:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise self._busy(_record(fd), certain=True) from None
            except OSError as err:
                if err.errno not in _NO_FLOCK:
                    raise
                flock = False
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(self.path))
        except FileNotFoundError:
            same = False
        if not same:
            return False
        holder = _record(fd)
        if holder and not flock and _running_here(holder):
            raise self._busy(holder, certain=False)
        if holder:
            log.warning(
                "%s: the nmt-train that held it (%s) ended without releasing it (killed?); "
                "taking it over",
                self.path,
                _describe(holder),
            )
        mine = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "argv": sys.argv,
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(mine) + "\n").encode(), 0)
        return True

    def _busy(self, holder: dict, certain: bool) -> RunDirError:
        """The refusal; `certain`: the kernel says the holder runs (else only its record)."""
        who = _describe(holder) if holder else "just starting"
        # deleting a file that is flocked would let a second writer in: suggested only when
        # the lock is no flock and its holder, on another host, cannot be checked
        gone = "" if certain else f"; if that process is gone, delete {self.path}"
        return RunDirError(
            f"{self.run_dir} is being trained by another nmt-train ({who}): "
            "two processes must not write one run; wait for it to end (Ctrl-C or SIGTERM "
            f"saves a checkpoint and stops it), or train in another hydra.run.dir{gone}"
        )

    def release(self) -> None:
        """Remove the lock file and let go of it (a no-op if not held)."""
        if self._fd is None:
            return
        # removed while still locked: whoever opened it meanwhile finds it stale (_take)
        self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    sys.exit(128 + signum)
