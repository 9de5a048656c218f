"""The recipes (conf/experiment/*.yaml): each composes into a valid training config, in the
direction its name says, from the one recipe they share."""

from __future__ import annotations

import pytest

from nmt.config_checks import validate
from nmt.resources import conf_dir
from tests.helpers import compose_config

EXPERIMENTS = sorted(p.stem for p in (conf_dir() / "experiment").glob("*.yaml"))


def test_the_four_recipes_of_the_readme_exist():
    assert {"multi30k_de_en", "multi30k_en_de", "bible_en_es", "bible_es_en"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_a_recipe_composes_into_a_valid_config_in_its_direction(experiment):
    cfg = compose_config("train", [f"+experiment={experiment}"])
    validate(cfg)  # what nmt-train checks before anything runs
    corpus, src, tgt = experiment.split("_")
    assert (cfg.data.name, cfg.data.src, cfg.data.tgt) == (corpus, src, tgt)
    # the shared recipe: label smoothing, time-limited, numbered saves kept for nmt-average
    assert cfg.optim.label_smoothing == 0.1 and cfg.train.max_minutes == 110
    assert cfg.train.keep_last >= 5 and cfg.train.save_every == cfg.train.valid_every


@pytest.mark.parametrize(
    "recipe", ["multi30k_de_en", "multi30k_en_de", "bible_en_es", "bible_es_en"]
)
def test_a_recipes_tuned_search_is_a_decode_group_for_nmt_translate(recipe):
    cfg = compose_config("translate", ["run=RUN", f"decode={recipe}"])
    validate(cfg)
    d = cfg.decode
    assert (d.strategy, d.beam_size, d.length_penalty) == ("beam", 5, "norm")
    assert 0 < d.alpha <= 1.2 and 0 <= d.word_reward <= 0.04  # inside the grid tuned on val
