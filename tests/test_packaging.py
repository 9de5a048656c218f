"""The configs and the committed corpora are found from a built wheel, not only from a
checkout."""

from __future__ import annotations

import os
import site
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_in_fresh_venv_finds_configs_and_corpora(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(dist),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    wheel = next(dist.glob("nmt-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    bindir = venv / "bin"
    purelib = subprocess.run(
        [bindir / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # The wheel goes in with pip; its dependencies (torch …) are borrowed from this
    # interpreter through a .pth line, so no download is needed and the editable install
    # of the checkout (a finder that only .pth files in site dirs activate) stays out.
    subprocess.run(
        [bindir / "python", "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        timeout=300,
    )
    Path(purelib, "borrowed_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run(
        [
            bindir / "python",
            "-c",
            "import nmt, nmt.resources as r; "
            "print(nmt.__file__); print(r.conf_dir()); print(r.demo_dir()); "
            "print(r.data_dir('bible'))",
        ],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    lines = where.stdout.splitlines()
    assert all(line.startswith(str(venv)) for line in lines), lines
    assert (Path(lines[2]) / "train.tsv.gz").is_file()
    assert all(
        (Path(lines[3]) / f"{s}.{lang}.xz").is_file()
        for s in ("train", "dev", "test")
        for lang in ("en", "es")
    )
    job = subprocess.run(
        [bindir / "nmt-train", "--cfg", "job"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert job.returncode == 0, job.stderr
    assert "name: demo" in job.stdout and "cell: gru" in job.stdout
    for command in ("nmt-translate", "nmt-evaluate", "nmt-analyze"):  # each finds its configs
        shown = subprocess.run(
            [bindir / command, "--cfg", "job"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert shown.returncode == 0, (command, shown.stderr)
        assert "decode:" in shown.stdout or "metrics:" in shown.stdout, (command, shown.stdout)
    for data, path in (
        ("data=demo", f"{lines[2]}/train.tsv.gz"),
        ("data=bible", f"{lines[3]}/train"),
    ):
        resolved = subprocess.run(
            [bindir / "nmt-train", data, "--cfg", "job", "--resolve"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert f"train: {path}\n" in resolved.stdout, (data, resolved.stderr)
