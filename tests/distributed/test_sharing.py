"""How work is split between torchrun processes, and how they agree on a run directory."""

from __future__ import annotations

import pytest
import torch

from nmt.errors import ConfigError
from nmt.train.distributed import Distributed, torchrun_overrides


def ranks(n: int) -> list[Distributed]:
    return [Distributed(torch.device("cpu"), r, n) for r in range(n)]


@pytest.mark.parametrize("n, items", [(2, 7), (3, 7), (4, 2), (3, 0)])
def test_the_shards_of_all_ranks_put_back_are_the_items_in_order(n, items, monkeypatch):
    group = ranks(n)
    shards = [d.shard(list(range(items))) for d in group]
    assert sorted(x for s in shards for x in s) == list(range(items))  # disjoint, complete
    monkeypatch.setattr(Distributed, "gather", lambda self, obj: shards)  # all_gather_object
    assert group[0].unshard(shards[0]) == list(range(items))


def test_an_update_is_split_evenly_or_refused():
    assert [d.share(6) for d in ranks(3)] == [2, 2, 2]
    with pytest.raises(ConfigError, match=r"optim.accumulate=3 .* multiple of 2"):
        ranks(2)[0].share(3)


def test_one_process_changes_nothing():
    single = Distributed(torch.device("cpu"))
    assert single.share(3) == 3 and single.shard([1, 2, 3]) == [1, 2, 3]
    assert single.unshard([1, 2]) == [1, 2] and single.sum(1.5, 2) == [1.5, 2]
    model = torch.nn.Linear(2, 2)
    assert single.wrap(model) is model


ENV = {"RANK": "0", "WORLD_SIZE": "2", "TORCHELASTIC_RUN_ID": "job/42"}


def test_the_run_directory_is_named_after_the_rendezvous():
    (override,) = torchrun_overrides(["data=demo"], ENV)
    assert override == "hydra.run.dir=outputs/${data.name}-${data.src}-${data.tgt}/ddp-job_42"
    assert torchrun_overrides(["hydra.run.dir=/shared/run"], ENV) == []


def test_ranks_other_than_0_write_no_record_and_no_log():
    extra = torchrun_overrides(["hydra.run.dir=/shared/run"], {**ENV, "RANK": "1"})
    assert "hydra.output_subdir=null" in extra
    assert "hydra.job_logging.root.handlers=[console]" in extra


@pytest.mark.parametrize(
    "argv, env, message",
    [
        (["data=demo"], {**ENV, "TORCHELASTIC_RUN_ID": "none"}, "give hydra.run.dir"),
        (["resume=true"], ENV, "resume=true needs hydra.run.dir"),
    ],
)
def test_a_run_directory_the_ranks_cannot_share_is_refused(argv, env, message):
    with pytest.raises(ConfigError, match=message):
        torchrun_overrides(argv, env)
