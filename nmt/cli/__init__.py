"""Thin Hydra entry points: parse the config, call the library, print."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue

from nmt.errors import NmtError
from nmt.rundir import RunDir

# Set while `hydra_errors` has turned HYDRA_FULL_ERROR on for its own use, not the user's.
_HYDRA_RAISES = "_NMT_HYDRA_RAISES"


def check_runs(run: object) -> None:
    """Refuse a run= that is no run directory (one, or an ensemble's list) at once, before a
    command imports torch to load it (a second or two)."""
    for path in [run] if isinstance(run, (str, Path)) else run:
        RunDir.open(path)


def _verbose() -> bool:
    if os.environ.get(_HYDRA_RAISES):
        return bool(os.environ.get("NMT_VERBOSE"))
    # as Hydra reads it (hydra/_internal/utils.py: _is_env_set): only "1" is set
    return bool(os.environ.get("NMT_VERBOSE")) or os.environ.get("HYDRA_FULL_ERROR") == "1"


def _fail(message: str, status: int = 2) -> NoReturn:
    """In an except block: re-raise the exception with NMT_VERBOSE (or the user's
    HYDRA_FULL_ERROR), else print `error: message` as one line and exit with status."""
    if _verbose():
        raise  # the exception being handled by the caller
    print(f"error: {message}", file=sys.stderr)
    sys.exit(status)


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0].rstrip(".") if lines else type(err).__name__


def os_message(err: OSError) -> str:
    """'<file>: <reason>' for a failed file operation (disk full, permission denied, …)."""
    reason = err.strerror or str(err)
    path = Path(err.filename) if err.filename else None
    if isinstance(err, FileExistsError) and path and path.exists() and not path.is_dir():
        reason = "is a file, but a directory is needed here; give a directory path"
    return f"{err.filename}: {reason}" if err.filename else reason


@contextlib.contextmanager
def naming(path: str | Path) -> Iterator[None]:
    """Give an OSError raised inside (e.g. ENOSPC when flushing) the file name it lacks."""
    try:
        yield
    except OSError as err:
        if err.filename is not None:
            raise
        raise OSError(err.errno, err.strerror, str(path)) from err


def _flush_or_drop_stdout() -> None:
    """Flush what was printed; if stdout itself failed, drop it so exit does not fail again."""
    try:
        sys.stdout.flush()
    except OSError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def hydra_message(err: Exception) -> str:
    """Hydra's multi-line report of a bad command line (misspelt key, wrong type, unknown
    config group option, malformed override) as one line."""
    text = _first_line(err)
    if isinstance(err, InterpolationResolutionError) and err.full_key:
        text = f"{err.full_key}: {text}"
    lines = [line.strip() for line in str(err).splitlines()]
    if isinstance(err, OverrideParseException) and len(lines) > 1:
        text += f": {lines[1]}; an override is KEY=VALUE"
    elif (
        isinstance(err, MissingConfigException)
        and (
            start := next(
                (i for i, x in enumerate(lines) if x.startswith("Available options")), None
            )
        )
        is not None
    ):
        options = []
        for line in lines[start + 1 :]:
            if not line or " " in line or "=" in line:
                break
            options.append(line)
        text += f"; {lines[start].rstrip(':').lower()}: {', '.join(options)}"
    elif isinstance(err, HydraException) and isinstance(err.__cause__, Exception):
        text += f": {_first_line(err.__cause__)}"
    return text


def hydra_errors(main: Callable) -> Callable:
    """Report Hydra's own errors (before the config reaches the command) as one line, exit 2.

    Hydra prints these over several lines and exits 1; with HYDRA_FULL_ERROR set it raises
    them instead, so it is set here for the call and the exception is reported like an
    NmtError. NMT_VERBOSE=1 or a HYDRA_FULL_ERROR=1 of the user's keeps the traceback.
    """

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        verbose = _verbose()
        saved = {k: os.environ.get(k) for k in ("HYDRA_FULL_ERROR", _HYDRA_RAISES)}
        os.environ["HYDRA_FULL_ERROR"] = "1"
        if not verbose:
            os.environ[_HYDRA_RAISES] = "1"
        try:
            return main(*args, **kwargs)
        except (HydraException, InterpolationResolutionError) as err:
            _fail(hydra_message(err))
        except OSError as err:  # Hydra making the run directory, e.g. hydra.run.dir=FILE
            _fail(os_message(err))
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    return wrapper


def report_errors(fn: Callable) -> Callable:
    """Print what a user can fix as one line on stderr and exit non-zero, without a traceback.

    - NmtError: "error: <message>", exit status 2;
    - a required key without a value (`run: ???`): "error: <key> is required …", exit status 2;
    - an interpolation that cannot be resolved (`data.train=${oops}`): "error: <key>: …", 2;
    - OSError (disk full, permission denied, …): "error: <file>: <reason>", exit status 2;
    - a closed output pipe (`nmt-translate … | head`): silence, exit status 141 as for SIGPIPE;
    - Ctrl-C outside the training loop (which saves and stops on its own): exit status 130.

    Set NMT_VERBOSE=1 (or HYDRA_FULL_ERROR=1) to get the traceback instead.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            if args and isinstance(args[0], DictConfig):
                # a required key left out or a broken ${…} is reported before any work starts
                OmegaConf.to_container(args[0], resolve=True, throw_on_missing=True)
            return fn(*args, **kwargs)
        except NmtError as err:
            _fail(str(err))
        except InterpolationResolutionError as err:  # e.g. data.train=${oops}
            _fail(hydra_message(err))
        except MissingMandatoryValue as err:
            key = err.full_key or "a key"
            _fail(f"{key} is required: pass {key}=VALUE")
        except BrokenPipeError:
            # the reader went away: nothing more to say, and stdout must not be flushed again
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(141)
        except OSError as err:
            _flush_or_drop_stdout()
            _fail(os_message(err))
        except KeyboardInterrupt:
            _fail("interrupted", 130)

    return wrapper


def prepared_setting(root: str, key: str) -> object:
    """${nmt_prepared:DIR,KEY}, a resolver: a data setting as the prepared corpus in DIR
    records it (conf/data/prepared.yaml takes every setting from there)."""
    from nmt.data.prepared import read_header  # torch loads only once the config is read

    header = read_header(root)
    return header["name"] if key == "name" else header["settings"][key]


def register_resolvers() -> None:
    """The resolvers the commands' YAML files use beyond nmt.config's."""
    if not OmegaConf.has_resolver("nmt_prepared"):
        OmegaConf.register_new_resolver("nmt_prepared", prepared_setting)


def openmp_waits() -> None:
    """Let OpenMP's idle workers sleep at once: GOMP_SPINCOUNT=0 unless the user set it or
    OMP_WAIT_POLICY. libgomp (torch's CPU wheels) spins 300,000 times after every parallel
    region by default, taking the CPU from whatever else runs; beside one busy process,
    2-thread training kept far more of its idle speed without the spinning, and lost none
    idle (bench/README.md, "Under load"); nmt-serve beside its clients' HTTP work served 1.20-1.23x
    the greedy sentences/s at concurrency 32 with it (two runs; bench/README.md, "The server,
    continuous batching"). libgomp reads it once, as torch loads it: call it before."""
    if "GOMP_SPINCOUNT" not in os.environ and "OMP_WAIT_POLICY" not in os.environ:
        os.environ["GOMP_SPINCOUNT"] = "0"
