"""Thin Hydra entry points: parse the config, call the library, print."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable

from nmt.errors import NmtError


def report_errors(fn: Callable) -> Callable:
    """Print a user error (NmtError) as one line on stderr and exit with status 2.

    Set NMT_VERBOSE=1 (or HYDRA_FULL_ERROR=1) to get the traceback instead.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except NmtError as err:
            if os.environ.get("NMT_VERBOSE") or os.environ.get("HYDRA_FULL_ERROR"):
                raise
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)

    return wrapper
