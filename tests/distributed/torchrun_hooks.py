"""`nmt-train` for torchrun with test hooks, set through the environment by test_ddp.py.

NMT_TEST_DUMP=DIR  each rank saves its model's parameters to DIR/rank<R>.pt after training
NMT_TEST_FAIL=R:U:crash|hang  rank R raises, or stops answering, after update U
"""

import os
import signal
import time
from pathlib import Path

import torch
from torch.distributed.elastic.multiprocessing.errors import record

from nmt.cli.train import main
from nmt.train.trainer import Trainer

RANK = int(os.environ["RANK"])
fit, after_update = Trainer.fit, Trainer._after_update


def dumping_fit(self: Trainer) -> dict:
    result = fit(self)
    torch.save(self.model.state_dict(), Path(os.environ["NMT_TEST_DUMP"]) / f"rank{RANK}.pt")
    return result


def failing_after_update(self: Trainer) -> None:
    after_update(self)
    rank, update, how = os.environ["NMT_TEST_FAIL"].split(":")
    if (int(rank), int(update)) != (RANK, self.progress.update):
        return
    if how == "hang":  # stuck for good: only torchrun's SIGTERM ends it
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        time.sleep(600)
    raise RuntimeError(f"injected failure on rank {RANK} after update {update}")


if "NMT_TEST_DUMP" in os.environ:
    Trainer.fit = dumping_fit
if "NMT_TEST_FAIL" in os.environ:
    Trainer._after_update = failing_after_update

if __name__ == "__main__":
    record(main)()
