"""A toy run trained once for the server tests, and servers on loopback ports that always stop."""

from __future__ import annotations

import contextlib
import copy
import threading
import time
from collections.abc import Iterator

import pytest

pytest.importorskip("fastapi", reason="the server needs the serve extra: pip install 'nmt[serve]'")
pytest.importorskip("httpx", reason="the server tests need httpx (the dev extra)")

import uvicorn  # noqa: E402

from nmt.serve import server  # noqa: E402
from nmt.translator import Translator  # noqa: E402
from tests.helpers import toy_pairs, train_toy_run  # noqa: E402


@pytest.fixture(scope="session")
def serve_run(tmp_path_factory):
    """A toy model trained through nmt-train (about 20 s), and its corpus."""
    run = train_toy_run(
        tmp_path_factory.mktemp("serve"), "train.max_updates=100", "train.valid_every=100"
    )
    return run, toy_pairs(12)


@pytest.fixture(scope="session")
def translator(serve_run) -> Translator:
    return Translator.load(serve_run[0], device="cpu")


@contextlib.contextmanager
def serving(app, timeout: float = 20.0) -> Iterator[str]:
    """Run app under uvicorn on a free loopback port in a thread; yield its base URL."""
    sock = server.bind("127.0.0.1", 0)
    srv = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout
        while not srv.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.01)
        yield server.address(sock).rstrip("/")
    finally:
        srv.should_exit = True
        thread.join(timeout)
        sock.close()


class Gate:
    """Holds every model call of a translator until opened; records what each call got."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.calls: list[tuple[int, int]] = []  # (sentences, beam_size) per translate call
        self.entered = threading.Event()

    def wrap(self, translator: Translator) -> Translator:
        gated = copy.copy(translator)
        translate = translator.translate

        def held(sentences, **kwargs):
            self.entered.set()
            assert self.open.wait(30), "the test never opened the gate"
            self.calls.append((len(sentences), kwargs["decode"].beam_size))
            return translate(sentences, **kwargs)

        gated.translate = held
        return gated
