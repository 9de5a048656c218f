"""`nmt-train` for torchrun in which one rank SIGKILLs itself, set through the environment by
test_rank_kill.py.

NMT_TEST_KILL=R:update:U  rank R kills itself in the middle of update U (after a forward pass,
                          before the gradients are all-reduced)
NMT_TEST_KILL=R:valid     rank R kills itself in the middle of its first validation (after the
                          perplexity, before decoding)
NMT_TEST_KILLED_AT=FILE   the moment of the kill (time.time()) is written there first
"""

import os
import signal
import time
from pathlib import Path

from torch.distributed.elastic.multiprocessing.errors import record

from nmt.cli.train import main
from nmt.train import trainer as trainer_module
from nmt.train.trainer import Trainer

RANK = int(os.environ["RANK"])
rank, where, *update = os.environ.get("NMT_TEST_KILL", "-1:none").split(":")
backward, valid_bleu = Trainer._backward, trainer_module.valid_bleu


def die() -> None:
    Path(os.environ["NMT_TEST_KILLED_AT"]).write_text(repr(time.time()))
    os.kill(os.getpid(), signal.SIGKILL)


def dying_backward(self: Trainer, index: list[int], last: bool) -> tuple[float, int]:
    if self.progress.update + 1 == int(update[0]):
        self._loss(self.train_data.batch(index).to(self.device), 0.0)  # the forward pass
        die()
    return backward(self, index, last)


def dying_valid_bleu(*args):
    die()
    return valid_bleu(*args)


if int(rank) == RANK and where == "update":
    Trainer._backward = dying_backward
if int(rank) == RANK and where == "valid":
    trainer_module.valid_bleu = dying_valid_bleu

if __name__ == "__main__":
    record(main)()
