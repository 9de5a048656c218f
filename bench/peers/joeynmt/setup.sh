#!/usr/bin/env bash
# Make JoeyNMT 2.3.0's own venv beside this script (ignored by git), as the issue asks:
# torch first (the CPU build this machine keeps on disk), then joeynmt with the two pins it
# needs on a current Python: sentencepiece<0.2 (0.2 dropped a call JoeyNMT makes) and
# importlib_metadata. Idempotent: an existing venv with joeynmt 2.3.0 is left as it is.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${JOEYNMT_VENV:-$here/.venv}"
python="${PYTHON:-python3}"
if "$venv/bin/python" -c 'import joeynmt, sys; sys.exit(joeynmt.__version__ != "2.3.0")' 2>/dev/null; then
    echo "joeynmt 2.3.0 already in $venv"
    exit 0
fi
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q torch==2.13.0
"$venv/bin/python" -m pip install -q joeynmt==2.3.0 'sentencepiece<0.2' importlib_metadata
"$venv/bin/python" -c 'import joeynmt, torch; print("joeynmt", joeynmt.__version__, "torch", torch.__version__)'
