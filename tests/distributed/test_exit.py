"""A torchrun process ends at once when training ends (nmt.cli.train.finish_at_once): with
its exit status, its log and output flushed, and no wait on threads still running."""

from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = """
import logging, sys, threading, time
from nmt.cli.train import finish_at_once

logging.basicConfig(filename=sys.argv[1], level=logging.INFO)

def work():
    # not a daemon: a normal interpreter exit would wait the 600 s for it
    threading.Thread(target=time.sleep, args=(600,)).start()
    logging.getLogger("nmt").info("stopped: reached train.max_updates")
    print("run directory: RUN")
    {end}

finish_at_once(work)
"""


@pytest.mark.parametrize(
    "end, status, stderr",
    [
        ("", 0, ""),
        ("sys.exit(143)", 143, ""),  # SIGTERM: saved, exit 128 + 15
        ("sys.exit(2)", 2, ""),  # report_errors has printed the error line
        ("sys.exit('error: bad input')", 1, "error: bad input"),
    ],
    ids=["finished", "signal", "error", "message"],
)
def test_the_process_ends_at_once_with_its_status_and_flushed_output(tmp_path, end, status, stderr):
    log = tmp_path / "train.log"
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(end=end), str(log)],
        capture_output=True,
        text=True,
        timeout=60,  # a teardown that waited for the thread would take 600 s
    )
    assert proc.returncode == status, proc.stderr
    assert proc.stdout == "run directory: RUN\n"
    assert proc.stderr.strip() == stderr
    assert "stopped: reached train.max_updates" in log.read_text()
