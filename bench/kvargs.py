"""key=value command-line arguments, as the nmt commands and every bench script take them."""

from __future__ import annotations

import sys


def parse_kv(argv: list[str], defaults: dict[str, str]) -> dict[str, str]:
    """`defaults` updated from argv's key=value pairs; anything else exits with one line."""
    args = dict(defaults)
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or key not in defaults:
            sys.exit(f"error: {arg!r}: expected key=value with key one of {', '.join(defaults)}")
        args[key] = value
    return args
