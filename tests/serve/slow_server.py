"""`python -m tests.serve.slow_server RUN DELAY_S`: nmt-serve's own runner (nmt/serve/server.py)
over a Translator that takes DELAY_S longer for every translation it makes (in a batched model
call or in the greedy stream): requests stay in flight long enough for the test to send
SIGTERM while they are."""

from __future__ import annotations

import copy
import sys
import time

from nmt.serve import server
from nmt.serve.app import create_app
from nmt.translator import Translator


def main() -> None:
    run, delay = sys.argv[1], float(sys.argv[2])
    translator = Translator.load(run, device="cpu")
    slow, hypotheses = copy.copy(translator), translator.hypotheses

    def slowly(*args, **kwargs):
        time.sleep(delay)
        return hypotheses(*args, **kwargs)

    slow.hypotheses = slowly
    sock = server.bind("127.0.0.1", 0)
    where = server.address(sock)

    def started() -> None:
        print(f"nmt-serve: slow server at {where}", file=sys.stderr, flush=True)

    server.run(create_app(slow), sock, drain_timeout_s=30, started=started)


if __name__ == "__main__":
    main()
