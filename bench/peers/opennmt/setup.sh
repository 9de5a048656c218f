#!/usr/bin/env bash
# Make OpenNMT-py 3.5.1's own venv beside this script (ignored by git), the second peer.
# OpenNMT-py 3.5 pins torch < 2.3: torch 2.2.2 from PyPI (its only build there is the CUDA
# 12.1 one, about 5 GB with its nvidia-* wheels; it runs on the CPU too), numpy < 2 (torch
# 2.2 was built against numpy 1), and sentencepiece for its sentencepiece transform.
# Idempotent: an existing venv with OpenNMT-py 3.5.1 is left as it is.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${OPENNMT_VENV:-$here/.venv}"
python="${PYTHON:-python3}"
if "$venv/bin/python" -c 'import onmt, sys; sys.exit(onmt.__version__ != "3.5.1")' 2>/dev/null; then
    echo "OpenNMT-py 3.5.1 already in $venv"
    exit 0
fi
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q torch==2.2.2 'numpy<2' OpenNMT-py==3.5.1 sentencepiece
"$venv/bin/python" -c 'import onmt, torch; print("OpenNMT-py", onmt.__version__, "torch", torch.__version__)'
