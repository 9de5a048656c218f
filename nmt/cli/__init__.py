"""Thin Hydra entry points: parse the config, call the library, print."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable

from omegaconf.errors import MissingMandatoryValue

from nmt.errors import NmtError


def _verbose() -> bool:
    return bool(os.environ.get("NMT_VERBOSE") or os.environ.get("HYDRA_FULL_ERROR"))


def report_errors(fn: Callable) -> Callable:
    """Print what a user can fix as one line on stderr and exit non-zero, without a traceback.

    - NmtError: "error: <message>", exit status 2;
    - a required key without a value (`run: ???`): "error: <key> is required …", exit status 2;
    - OSError (disk full, permission denied, …): "error: <file>: <reason>", exit status 2;
    - a closed output pipe (`nmt-translate … | head`): silence, exit status 141 as for SIGPIPE;
    - Ctrl-C outside the training loop (which saves and stops on its own): exit status 130.

    Set NMT_VERBOSE=1 (or HYDRA_FULL_ERROR=1) to get the traceback instead.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except NmtError as err:
            if _verbose():
                raise
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        except MissingMandatoryValue as err:
            if _verbose():
                raise
            key = err.full_key or "a key"
            print(f"error: {key} is required: pass {key}=VALUE", file=sys.stderr)
            sys.exit(2)
        except BrokenPipeError:
            # the reader went away: nothing more to say, and stdout must not be flushed again
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(141)
        except OSError as err:
            if _verbose():
                raise
            where = f"{err.filename}: " if err.filename else ""
            print(f"error: {where}{err.strerror or err}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            if _verbose():
                raise
            print("error: interrupted", file=sys.stderr)
            sys.exit(130)

    return wrapper
