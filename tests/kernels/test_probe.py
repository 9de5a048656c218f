"""kernels=auto: the start-up probes pick by measurement, leave the random stream alone, and
keep a recorded choice."""

import pytest
import torch

from nmt.kernels import Kernels, probe, select
from nmt.kernels import precision as precision_module


def test_the_probes_leave_the_random_stream_alone():
    """A resumed run probes again before its first update: drawing random numbers there
    would change its dropout masks from the uninterrupted run's."""
    torch.manual_seed(3)
    want = torch.rand(4)
    torch.manual_seed(3)
    probe.fastest_logits.__wrapped__(16, 40, 1)
    probe.fastest_gemm.__wrapped__(16, 1)
    torch.testing.assert_close(torch.rand(4), want, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("costs", "chosen"),
    [
        ({"plain": 1.0, "fast": 0.97}, "plain"),  # within the margin: the first, simplest one
        ({"plain": 1.0, "fast": 0.5}, "fast"),  # clearly faster
        ({"plain": 0.5, "fast": 1.0}, "plain"),
    ],
)
def test_another_candidate_than_the_first_only_when_clearly_faster(monkeypatch, costs, chosen):
    clock = [0.0]
    monkeypatch.setattr(probe.time, "perf_counter", lambda: clock[0])

    def run(cost):
        def call():
            clock[0] += cost

        return call

    name, times = probe._fastest({n: run(c) for n, c in costs.items()})
    assert name == chosen
    assert times == {n: 1e3 * c for n, c in costs.items()}


def test_auto_on_the_cpu_takes_the_fast_paths():
    kernels, measured = select("auto", torch.device("cpu"), torch.nn.Linear(256, 4096), 8)
    assert kernels.rnn_path == "by_direction" and kernels.loss_chunk == 8
    assert kernels.logits_path in ("plain", "blocked", "onednn")
    assert kernels.gemm == "blas"  # decoding only: training's products are not measured
    assert "'plain'" in measured and "'blocked'" in measured  # both were timed


def test_a_small_model_is_not_measured(monkeypatch):
    """Microsecond products measure noise: the simplest way, the same in every process."""
    monkeypatch.setattr(probe, "_fastest", lambda *a: pytest.fail("measured"))
    probe.fastest_logits.cache_clear()
    probe.fastest_gemm.cache_clear()
    kernels, _ = select("auto", torch.device("cpu"), torch.nn.Linear(16, 40), training=True)
    assert (kernels.logits_path, kernels.gemm) == ("plain", "blas")


@pytest.mark.parametrize("hidden, measured", [(64, 0), (165, 0), (166, 1), (512, 1)])
def test_training_products_are_measured_from_a_hidden_size_of_166(monkeypatch, hidden, measured):
    """The comparison model's hidden size (512) is measured: unmeasured, it stayed on torch's
    BLAS, which runs AVX2 kernels on AMD processors (1.23× slower training there)."""
    timed = []
    monkeypatch.setattr(probe, "_fastest", lambda c: timed.append(list(c)) or ("blas", {}))
    probe.fastest_gemm.cache_clear()
    assert probe.fastest_gemm(hidden, 1)[0] == "blas"
    assert len(timed) == measured and all(names[0] == "blas" for names in timed)
    probe.fastest_gemm.cache_clear()


@pytest.mark.parametrize("precision, timed", [("fp32", 1), ("bf16", 0)])
def test_training_under_autocast_does_not_time_the_fp32_products(monkeypatch, precision, timed):
    """bf16 training multiplies through autocast: timing fp32 products would cost start-up
    time and log a choice that is not used."""
    calls = []
    monkeypatch.setattr(precision_module, "cpu_has_bf16", lambda: True)
    monkeypatch.setattr(probe, "fastest_logits", lambda *a: ("plain", {}))
    monkeypatch.setattr(probe, "fastest_gemm", lambda *a: calls.append(a) or ("onednn", {}))
    kernels, measured = select(
        "auto", torch.device("cpu"), torch.nn.Linear(512, 40), training=True, precision=precision
    )
    assert len(calls) == timed
    assert (kernels.precision, kernels.gemm) == (precision, "onednn" if timed else "blas")
    assert ("training products ms" in measured) == bool(timed)


def test_a_recorded_choice_is_kept_without_measuring(monkeypatch):
    monkeypatch.setattr(probe, "fastest_logits", lambda *a: pytest.fail("measured"))
    recorded = Kernels("by_direction", "blocked", "onednn", 1024).as_dict()
    kernels, _ = select(
        "auto", torch.device("cpu"), torch.nn.Linear(16, 40), 512, recorded=recorded
    )
    assert kernels == Kernels("by_direction", "blocked", "onednn", 512)  # the chunk as now set


def test_the_encoder_probe_times_both_paths_and_leaves_the_random_stream_alone(monkeypatch):
    monkeypatch.setattr(probe, "MIN_MEASURED", 0)  # a tiny RNN, measured all the same
    torch.manual_seed(3)
    want = torch.rand(4)
    torch.manual_seed(3)
    path, times = probe.fastest_encoder.__wrapped__("GRU", 8, 16, 1, True, 1)
    torch.testing.assert_close(torch.rand(4), want, rtol=0, atol=0)
    assert path in ("by_direction", "packed") and set(times) == {"by_direction", "packed"}


@pytest.mark.parametrize("faster", ["by_direction", "packed"])
def test_auto_runs_the_encoder_without_autograd_the_way_measured_faster(monkeypatch, faster):
    monkeypatch.setattr(probe, "fastest_encoder", lambda *a: (faster, {faster: 1.0}))
    encoder = torch.nn.GRU(8, 16, batch_first=True, bidirectional=True)
    kernels, measured = select(
        "auto", torch.device("cpu"), torch.nn.Linear(16, 40), encoder=encoder
    )
    assert kernels.rnn_path == "by_direction"  # training's backward: always by direction
    assert kernels.rnn_decode == ("packed" if faster == "packed" else "")
    assert "encoder without autograd" in measured
    # a resumed run keeps what its checkpoint recorded, even from before rnn_decode existed
    old = {k: v for k, v in kernels.as_dict().items() if k != "rnn_decode"}
    assert (
        select("auto", torch.device("cpu"), torch.nn.Linear(16, 40), recorded=old)[0].rnn_decode
        == ""
    )
