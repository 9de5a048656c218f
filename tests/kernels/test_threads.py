"""threads: the CPUs a process may use, and decoding's tuner, which follows the load and
never changes what is decoded."""

from __future__ import annotations

import contextlib

import pytest
import torch

from nmt import resources
from nmt.config import AttentionConfig, DecodeConfig, ModelConfig
from nmt.errors import ConfigError
from nmt.kernels import Kernels, select
from nmt.kernels import threads as threads_module
from nmt.kernels.threads import ThreadTuner, available_cpus, resolve_threads
from nmt.model import Seq2Seq
from nmt.search.decode import decode_nbest


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    """The tuners set torch's process-wide thread count: every test leaves it as it was."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(
    ("files", "quota"),
    [
        ({"cpu.max": "max 100000\n"}, None),  # cgroup v2, no limit
        ({"cpu.max": "150000 100000\n"}, 1.5),  # docker --cpus=1.5
        ({"cpu/cpu.cfs_quota_us": "200000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 2.0),  # v1
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({}, None),  # no cgroup file system
    ],
)
def test_a_cgroup_quota_caps_the_cpus(tmp_path, files, quota):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert resources._cgroup_quota(tmp_path) == quota
    cpus = available_cpus(tmp_path)
    assert 1 <= cpus <= len(resources.os.sched_getaffinity(0))
    if quota:
        assert cpus <= -(-quota // 1)  # rounded up: 1.5 CPUs run 2 threads


def test_auto_shares_the_cpus_among_a_nodes_processes(monkeypatch):
    monkeypatch.setattr(threads_module, "available_cpus", lambda: 8)
    assert resolve_threads("auto") == (8, True)
    assert resolve_threads("auto", processes=4) == (2, True)
    assert resolve_threads("auto", processes=16) == (1, True)
    assert resolve_threads(3) == (3, False)
    assert resolve_threads("2") == (2, False)
    assert resolve_threads(0) == (torch.get_num_threads(), False)  # torch's own default


@pytest.mark.parametrize("value", ["many", "-1", "1.5", ""])
def test_a_bad_threads_value_is_refused_naming_the_key(value):
    with pytest.raises(ConfigError, match=r"threads=.*auto"):
        resolve_threads(value)


class FakeMachine:
    """A clock whose units cost what the current thread count costs under the current load."""

    def __init__(self, costs: dict[int, float]) -> None:
        self.now, self.costs = 0.0, costs

    def clock(self) -> float:
        return self.now

    def run(self, tuner: ThreadTuner, work: float = 100.0) -> int:
        with tuner.unit(work) as threads:
            assert torch.get_num_threads() == threads
            self.now += work * self.costs[threads]
        return threads


def test_the_tuner_follows_the_load_both_ways():
    idle = {2: 1.0, 1: 1.3}
    machine = FakeMachine(dict(idle))
    tuner = ThreadTuner(2, every=16, trial=4, clock=machine.clock)
    chosen = [machine.run(tuner) for _ in range(200)]
    assert chosen[:6] == [2, 2, 1, 1, 1, 1]  # warm-up, a figure, then a trial of 1
    assert chosen.count(1) <= 20, chosen  # trials of the slower count grow rarer
    machine.costs.update({2: 6.0, 1: 1.4})  # a busy neighbour: 2 threads wait at barriers
    chosen = [machine.run(tuner) for _ in range(40)]
    assert chosen[10:].count(1) >= 30 - 4, chosen  # moved within a few units; one trial of 2
    machine.costs.update(idle)  # the neighbour is gone
    chosen = [machine.run(tuner) for _ in range(150)]
    assert chosen[-30:].count(2) >= 30 - 4, chosen  # back to 2 within a few trials
    assert "now 2" in tuner.describe()


def test_a_far_slower_count_is_tried_ever_more_rarely():
    machine = FakeMachine({4: 10.0, 2: 3.0, 1: 1.0})  # a loaded machine: 1 thread best
    tuner = ThreadTuner(4, every=16, trial=4, clock=machine.clock)
    chosen = [machine.run(tuner) for _ in range(2000)]
    assert chosen[-1000:].count(1) >= 950  # the waits doubled: few units on trial
    assert tuner.best == 1 and tuner.wait[4] == 16 * 16  # the longest wait


def test_fewer_threads_take_over_only_when_clearly_faster():
    machine = FakeMachine({2: 1.0, 1: 0.9})  # 10 % is idle noise, not a busy machine
    tuner = ThreadTuner(2, clock=machine.clock)
    chosen = [machine.run(tuner) for _ in range(200)]
    assert chosen.count(2) >= 180 and tuner.best == 2


class Alternating:
    """A tuner that switches the thread count at every step (what the real one may do)."""

    def __init__(self) -> None:
        self.ran: list[int] = []

    @contextlib.contextmanager
    def unit(self, work: float):
        threads = 1 + len(self.ran) % 2
        torch.set_num_threads(threads)
        self.ran.append(threads)
        yield threads


def test_the_tuned_decoding_decodes_exactly_what_a_fixed_count_decodes():
    """Forward products split their rows, never a sum, among threads: the same bits under
    every count, so switching counts between batches changes no output."""
    torch.manual_seed(0)
    cfg = ModelConfig(emb_size=64, hidden_size=128, dec_hidden_size=256, dropout=0.0)
    model = Seq2Seq.build(cfg, AttentionConfig(size=128), 300, 1500).eval()
    model.use(select("auto", torch.device("cpu"), model.decoder.output)[0])
    g = torch.Generator().manual_seed(1)
    sources = [torch.randint(4, 300, (n,), generator=g).tolist() for n in range(3, 35, 3)]
    decode = DecodeConfig(
        strategy="beam", beam_size=4, nbest=2, batch_size=3, max_len_a=0.0, max_len_b=12
    )

    def run(kernels_tuner, threads):
        torch.set_num_threads(threads)
        model.kernels.tuner = kernels_tuner
        found = decode_nbest(model, sources, decode, torch.device("cpu"))
        return [(r.tokens.tolist(), r.score.tolist(), r.logprob.tolist()) for r in found]

    one, two = run(None, 1), run(None, 2)
    alternating = Alternating()
    tuned = run(alternating, 2)
    assert set(alternating.ran) == {1, 2}  # both counts did run
    assert one == two == tuned


def test_kernels_without_a_tuner_leave_the_count_alone():
    before = torch.get_num_threads()
    with Kernels().unit(10.0):
        assert torch.get_num_threads() == before
