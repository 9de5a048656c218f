"""Decoding many sentences through the configured strategy; the decode configs and checks."""

import dataclasses

import pytest
import torch
from omegaconf import OmegaConf

from nmt import EOS_ID
from nmt.config import DecodeConfig
from nmt.config_checks import validate_decode
from nmt.errors import ConfigError
from nmt.resources import conf_dir
from nmt.search import Scorer, beam_search
from nmt.search.decode import decode_ids, decode_nbest, search_batch
from nmt.search.result import max_lengths
from tests.bigram import BigramModel
from tests.conftest import padded, tiny_model
from tests.helpers import compose_config
from tests.search.test_beam import EARLY

IDS = [[5, 6, 7, 8, 9, 10], [11, 12], [13], [5, 5, 5, 5], [14, 15, 16]]
BEAM = DecodeConfig(strategy="beam", beam_size=3, alpha=1.0, nbest=2, batch_size=2)


def _model():
    model = tiny_model(seed=2)
    with torch.no_grad():
        model.decoder.output.bias[EOS_ID] += 0.5
    return model


def test_decode_ids_runs_the_configured_beam_in_input_order():
    model = _model()
    got = decode_ids(model, IDS, BEAM, torch.device("cpu"))
    src, src_len = padded([ids + [EOS_ID] for ids in IDS])
    limit = max_lengths(src_len, BEAM.max_len_a, BEAM.max_len_b)
    expected = beam_search(model, src, src_len, limit, Scorer("norm", 1.0), 3).token_lists()
    assert got == expected
    greedy = decode_ids(model, IDS, DecodeConfig(batch_size=2), torch.device("cpu"))
    assert greedy != got  # the strategy is not ignored


def test_decode_nbest_gives_each_sentence_its_list_trimmed_to_its_source():
    model = _model()
    results = decode_nbest(model, IDS, BEAM, torch.device("cpu"))
    src, src_len = padded([ids + [EOS_ID] for ids in IDS])
    whole = search_batch(model, src, src_len, BEAM, nbest=2)
    for i, (ids, result) in enumerate(zip(IDS, results, strict=True)):
        assert result.token_lists() == whole.token_lists()[2 * i : 2 * i + 2]
        torch.testing.assert_close(result.score, whole.score[2 * i : 2 * i + 2], atol=1e-5, rtol=0)
        assert result.attention.shape == (2, int(result.lengths.max()), len(ids) + 1)
        torch.testing.assert_close(
            result.attention.sum(-1)[0, : result.lengths[0]], torch.ones(int(result.lengths[0]))
        )


def test_model_is_put_back_in_training_mode():
    model = _model().train()
    decode_ids(model, IDS[:2], BEAM, torch.device("cpu"))
    assert model.training


@pytest.mark.parametrize(
    ("change", "keys"),
    [
        ({"nbest": 4}, ["decode.nbest=4", "decode.beam_size=3"]),
        ({"strategy": "greedy"}, ["decode.strategy=greedy", "decode.beam_size=3"]),
        ({"strategy": "sampling"}, ["decode.strategy='sampling'"]),
        ({"length_penalty": "cubic"}, ["decode.length_penalty='cubic'"]),
        ({"alpha": -1.0}, ["decode.alpha=-1.0"]),
        ({"min_len": -1}, ["decode.min_len=-1"]),
        ({"stop": "first"}, ["decode.stop='first'"]),
    ],
)
def test_contradictory_settings_are_refused_naming_the_keys(change, keys):
    with pytest.raises(ConfigError) as err:
        validate_decode(dataclasses.replace(BEAM, **change))
    assert all(k in str(err.value) for k in keys), str(err.value)


def test_decode_yaml_files_set_every_key_and_beam_has_the_issue_defaults():
    fields = {f.name for f in dataclasses.fields(DecodeConfig)}
    for name in ("greedy", "beam"):
        assert set(OmegaConf.load(conf_dir() / "decode" / f"{name}.yaml")) == fields
    beam = compose_config("translate", ["run=x", "decode=beam"]).decode
    assert dict(beam) == {
        "strategy": "beam",
        "beam_size": 5,
        "length_penalty": "norm",
        "alpha": 1.0,
        "word_reward": 0.0,
        "nbest": 1,
        "min_len": 0,
        "stop": "exact",
        "max_len_a": 1.5,
        "max_len_b": 10,
        "batch_size": 64,
        "buffer_size": 1000,
        "precision": "fp32",
        "quantize": "none",
    }
    validate_decode(beam)
    validate_decode(compose_config("train", []).decode)  # greedy, the training default


def test_default_objective_is_raw_log_probability():
    scorer = Scorer.from_config(DecodeConfig())
    logprob, length = torch.tensor([-3.0, -5.0]), torch.tensor([2, 7])
    torch.testing.assert_close(scorer.objective(logprob, length), logprob)


def test_decode_stop_reaches_the_beam_search():
    model = BigramModel(EARLY)
    src, src_len = padded([[5, EOS_ID]])
    cfg = dataclasses.replace(BEAM, beam_size=2, nbest=1, length_penalty="norm", alpha=1.0)
    assert search_batch(model, src, src_len, cfg).token_lists() == [[4, 5]]
    early = dataclasses.replace(cfg, stop="early")
    assert search_batch(model, src, src_len, early).token_lists() == [[]]
