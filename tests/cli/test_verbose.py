"""Which settings of the traceback switches keep the one-line error."""

from __future__ import annotations

import subprocess

import pytest

from tests.helpers import cli_command, cli_env


@pytest.mark.parametrize(
    "command, args, line",
    [
        ("evaluate", ["hyp=nothing.txt", "ref=nothing.txt"], "error: nothing.txt"),
        ("train", ["model.hiden_size=64", "--cfg", "job"], "error: Could not override"),
    ],
    ids=["error-in-the-command", "error-in-the-config"],
)
def test_hydra_full_error_zero_keeps_the_one_line_error(command, args, line, tmp_path):
    # Hydra counts HYDRA_FULL_ERROR as set only when it is "1"; "0" means off
    proc = subprocess.run(
        cli_command(command, *args),
        capture_output=True,
        text=True,
        env=cli_env(HYDRA_FULL_ERROR="0"),
        cwd=tmp_path,
        timeout=300,
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith(line), proc.stderr
