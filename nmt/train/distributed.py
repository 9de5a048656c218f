"""Training on several processes with torch.distributed, started by torchrun: one per device.

torchrun tells each process its place in RANK, WORLD_SIZE and LOCAL_RANK; `from_env` joins
them in a process group (NCCL on CUDA, gloo on CPU) whose collectives give up after
`train.dist_timeout_s`, so a rank that crashes or hangs stops the job instead of freezing it.
Without torchrun (WORLD_SIZE unset or 1) every method here is a no-op.

N processes train as one process with the same config would:

- an update is `optim.accumulate` token batches whatever N is; rank r trains on batches r,
  r + N, … of each update (`shard`), so accumulate must be a multiple of N;
- each rank divides a batch's loss by its tokens and by its share (accumulate / N) and DDP
  averages the gradients over the ranks: the update's gradient is the single-process one;
- validation is sharded the same way and gathered (`unshard`), so every rank sees the same
  numbers and takes the same decisions (best, patience, plateau learning rate);
- rank 0 alone writes the run directory (config, SentencePiece, metrics, checkpoints).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from nmt.errors import ConfigError, DistributedError

log = logging.getLogger(__name__)
T = TypeVar("T")


def resolve_device(name: str) -> torch.device:
    """The torch device `name` (auto | cpu | cuda | cuda:N) if this machine has it; `auto` is
    CUDA when available, else CPU. Anything else is a ConfigError naming the fix."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ConfigError(
            f"device={name} is not a torch device ({err}); use auto, cpu or cuda"
        ) from None
    if device.type == "cuda" and not (
        torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count()
    ):
        have = (
            f"{torch.cuda.device_count()} CUDA devices" if torch.cuda.is_available() else "no CUDA"
        )
        raise ConfigError(f"device={name}: this machine has {have}; use device=auto or device=cpu")
    return device


@dataclass
class Distributed:
    """This process's place in the job; rank 0 of 1 when training runs in one process."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    timeout_s: float = 0.0

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that logs and writes files."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def share(self, accumulate: int) -> int:
        """Batches of each update this rank trains on; refuse an update N cannot split."""
        if accumulate % self.world_size:
            raise ConfigError(
                f"optim.accumulate={accumulate} batches per update cannot be shared by "
                f"{self.world_size} processes: set optim.accumulate to a multiple of "
                f"{self.world_size} (an update is optim.accumulate batches of up to "
                "data.batch_tokens tokens, however many processes train)"
            )
        return accumulate // self.world_size

    def shard(self, items: Sequence[T]) -> list[T]:
        """This rank's items: r, r + N, r + 2N, …"""
        return list(items[self.rank :: self.world_size])

    def unshard(self, mine: list[T]) -> list[T]:
        """Every rank's `shard` results put back in the original order, on every rank."""
        parts = self.gather(mine)
        n = len(parts)
        return [parts[k % n][k // n] for k in range(sum(len(p) for p in parts))]

    def gather(self, obj: T) -> list[T]:
        """`obj` of every rank, in rank order, on every rank."""
        if not self.active:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def sum(self, *values: float) -> list[float]:
        """Each value summed over the ranks."""
        return self._reduce(values, dist.ReduceOp.SUM)

    def max(self, *values: float) -> list[float]:
        """Each value's maximum over the ranks (for flags: true on any rank)."""
        return self._reduce(values, dist.ReduceOp.MAX)

    def _reduce(self, values: Sequence[float], op: dist.ReduceOp) -> list[float]:
        if not self.active:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device)  # (len(values),)
        dist.all_reduce(t, op)
        return t.tolist()

    @contextmanager
    def main_first(self) -> Iterator[None]:
        """Run the body on rank 0, then on the others (which read what rank 0 wrote)."""
        if not self.is_main:
            self.barrier()
        yield
        if self.is_main:
            self.barrier()

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module that trains: DDP around `model` under torchrun, else `model` itself."""
        if not self.active:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def no_sync(self, net: nn.Module, last: bool) -> AbstractContextManager:
        """Skip DDP's gradient all-reduce for all but the `last` batch of an update."""
        if self.active and not last:
            return net.no_sync()
        return nullcontext()


def _lost_peer(err: BaseException) -> bool:
    """Whether `err` is a collective that failed: a peer crashed, or a wait timed out."""
    text = str(err)
    return isinstance(err, dist.DistError) or any(
        s in text for s in ("gloo", "NCCL", "Connection closed by peer", "Connection reset")
    )


@contextmanager
def from_env(device: torch.device, timeout_s: float) -> Iterator[Distributed]:
    """This process's `Distributed`: joined to torchrun's process group if there is one.

    On CUDA each process takes the GPU numbered LOCAL_RANK. A collective that fails because
    another rank died or timed out becomes a `DistributedError` that says so.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        yield Distributed(device)
        return
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    log.info("process group: %d processes (%s), timeout %gs", world, backend, timeout_s)
    try:
        yield Distributed(device, rank, world, timeout_s)
    except RuntimeError as err:
        if not _lost_peer(err):
            raise
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DistributedError(
            f"rank {rank} of {world}: another process of this job crashed or did not answer "
            f"within train.dist_timeout_s={timeout_s:g} s ({first}); the failing rank's own "
            "error is above, and in torchrun's summary"
        ) from err
    finally:
        dist.destroy_process_group()


def torchrun_overrides(argv: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """Hydra overrides that one torchrun process adds to the command line `argv`.

    Hydra's default run directory holds the start time, which ranks may see a second apart,
    so under torchrun it is `outputs/<data>-<src>-<tgt>/ddp-<rendezvous id>` instead (the id is
    random with --standalone, and the --rdzv-id a cluster job gives). Ranks other than 0 write
    no Hydra record and no train.log, and log warnings only.
    """
    given = dict(a.lstrip("+~").split("=", 1) for a in argv if "=" in a)
    extra = []
    if "hydra.run.dir" not in given:
        run_id = env.get("TORCHELASTIC_RUN_ID", "none")
        if given.get("resume", "false").lower() not in ("false", "0", "no", "off"):
            raise ConfigError("resume=true needs hydra.run.dir=RUN_DIR, the run to continue")
        if run_id in ("", "none"):
            raise ConfigError(
                "under torchrun without a rendezvous id (--rdzv-id) the processes cannot agree "
                "on a run directory: give hydra.run.dir=RUN_DIR (on multiple machines, a "
                "folder they all see)"
            )
        safe = re.sub(r"[^\w.-]", "_", run_id)
        extra.append(f"hydra.run.dir=outputs/${{data.name}}-${{data.src}}-${{data.tgt}}/ddp-{safe}")
    if int(env.get("RANK", "0")) != 0:
        extra += [
            "hydra.output_subdir=null",
            "hydra.job_logging.root.handlers=[console]",
            "hydra.job_logging.root.level=WARNING",
        ]
    return extra
