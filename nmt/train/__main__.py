"""`python -m nmt.train`, the same as `nmt-train`, for `torchrun -m nmt.train …`.

`record` hands an uncaught exception to torchrun, whose summary then shows the failing
rank's traceback beside its number.
"""

from torch.distributed.elastic.multiprocessing.errors import record

from nmt.cli.train import main

if __name__ == "__main__":
    record(main)()
