"""`nmt-train`: train a model into a run directory (Hydra config conf/train.yaml).

A new run needs a fresh directory; `resume=true hydra.run.dir=RUN` continues the run in RUN
from its checkpoints/last.pt exactly where it stopped (or starts it there if nothing was
saved yet). Ctrl-C or SIGTERM saves a checkpoint and exits with status 130 or 143. While it
trains, RUN/.lock names the process, and a second nmt-train on RUN is refused (train/lock.py).
Under torchrun (`torchrun --nproc_per_node=N -m nmt.cli.train …`) each process is one rank of a
DistributedDataParallel job (nmt/train/distributed.py).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from nmt.cli import hydra_errors, openmp_waits, register_resolvers, report_errors
from nmt.config import register_configs
from nmt.config_checks import validate
from nmt.errors import ConfigError
from nmt.resources import conf_dir
from nmt.rundir import RunDir

register_configs()
register_resolvers()


def _explicit_run_dir() -> bool:
    hydra_cfg = HydraConfig.get()
    given = (o.split("=", 1)[0].lstrip("+~") for o in hydra_cfg.overrides.hydra)
    return hydra_cfg.mode != RunMode.RUN or "hydra.run.dir" in given


@hydra_errors
@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="train")
@report_errors
def _train(cfg: DictConfig) -> float | None:
    """Train; the run directory is Hydra's output directory. Returns the best score (sweeps)."""
    validate(cfg)
    if cfg.resume and not _explicit_run_dir():
        raise ConfigError(
            "resume=true needs hydra.run.dir=RUN_DIR, the run directory to continue (the "
            "default directory is a new, empty one)"
        )
    # torch is imported only once the config is valid
    from nmt.train.distributed import from_env, resolve_device
    from nmt.train.lock import RunLock
    from nmt.train.trainer import Trainer

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    # one writer per run directory: rank 0 writes it, so rank 0 holds its lock
    with (
        from_env(resolve_device(cfg.device), cfg.train.dist_timeout_s) as dist,
        RunLock(run_dir) if dist.is_main else contextlib.nullcontext(),
    ):
        result = Trainer(cfg, run_dir, dist).fit()
    if result["signal"]:
        name = signal.Signals(result["signal"]).name
        if dist.is_main:
            print(
                f"interrupted by {name}: saved {RunDir(run_dir).last} at update "
                f"{result['updates']}; continue with the same command and resume=true "
                f"hydra.run.dir={run_dir}",
                file=sys.stderr,
            )
        sys.exit(128 + result["signal"])
    if dist.is_main:
        print(f"run directory: {run_dir}")
    return result["best"]


def finish_at_once(work: Callable[[], object]) -> NoReturn:
    """Run `work`, then end the process with its exit status without the interpreter's
    teardown (os._exit): what a torchrun process does once training has finished.

    Under torchrun, 2 of 30 runs of the crash-and-resume test on an AMD EPYC machine aborted
    *after* training had finished and saved ("terminate called without an active exception",
    then SIGABRT; 0 of 50 with this, bench/exit_abort.py): a C++ thread of the process group
    or of a thread pool still joinable while static objects are destroyed at exit. Everything
    nmt writes is closed by then (checkpoints and metrics.csv, the run lock released); the log
    handlers and standard streams are flushed here, so skipping the teardown loses nothing.
    An exception other than SystemExit propagates (to torchrun's error record) as before.
    """
    try:
        work()
        status = 0
    except SystemExit as stop:
        if isinstance(stop.code, str):
            print(stop.code, file=sys.stderr)
        status = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(status)


@report_errors
def main() -> None:
    """`nmt-train`; under torchrun, each process first adds the overrides that give all
    ranks one run directory (nmt/train/distributed.py: torchrun_overrides), and ends at once
    when training ends (finish_at_once)."""
    openmp_waits()  # before torch is imported
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from nmt.train.distributed import torchrun_overrides

        sys.argv += torchrun_overrides(sys.argv[1:], os.environ)
        finish_at_once(_train)
    _train()


if __name__ == "__main__":  # `python -m nmt.cli.train`, for `torchrun -m nmt.cli.train …`
    # `record` hands an uncaught exception to torchrun, whose summary then shows the failing
    # rank's traceback beside its number
    openmp_waits()
    from torch.distributed.elastic.multiprocessing.errors import record

    record(main)()
