"""Tests for the Bible corpus builder (data/bible/build.py) and its committed output."""

from __future__ import annotations

import importlib.util
import lzma
import re
from functools import cache
from pathlib import Path
from types import ModuleType

import pytest
from omegaconf import OmegaConf

from nmt.data.corpus import split_files
from nmt.resources import data_dir
from tests.helpers import compose_config

BIBLE_DIR = Path(__file__).resolve().parents[2] / "data" / "bible"
SPLITS = ("train", "dev", "test")


@pytest.fixture(scope="module")
def build() -> ModuleType:
    """The builder, loaded from its file: it is a script, not part of ``nmt``."""
    spec = importlib.util.spec_from_file_location("bible_build", BIBLE_DIR / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def lines(split: str, lang: str) -> tuple[str, ...]:
    """The lines of a committed file, without their newlines."""
    text = lzma.decompress((BIBLE_DIR / f"{split}.{lang}.xz").read_bytes()).decode("utf-8")
    assert text.endswith("\n")
    return tuple(text[:-1].split("\n"))


def readme_pairs() -> dict[str, int]:
    """Pairs per split as the README's table states them."""
    rows = re.findall(
        r"^\| (train|dev|test) \|[^|]*\| ([\d,]+) \|", (BIBLE_DIR / "README.md").read_text(), re.M
    )
    return {split: int(count.replace(",", "")) for split, count in rows}


# The committed files


@pytest.mark.parametrize("split", SPLITS)
def test_each_split_has_as_many_english_as_spanish_lines_as_the_readme_says(split):
    assert len(lines(split, "en")) == len(lines(split, "es")) == readme_pairs()[split]


@pytest.mark.parametrize("split", SPLITS)
def test_no_line_is_empty_or_carries_markup(split):
    for lang in ("en", "es"):
        for n, line in enumerate(lines(split, lang), 1):
            assert line.strip() == line and line, (split, lang, n)
            assert not re.search(r"<[^>]*>|&\w+;|\s\s", line), (split, lang, n, line)


def test_no_dev_or_test_line_occurs_in_an_earlier_split():
    seen: set[str] = set()
    for split in SPLITS:
        here = set(lines(split, "en")) | set(lines(split, "es"))
        assert not here & seen, (split, sorted(here & seen)[:3])
        seen |= here


def test_dev_and_test_are_the_readmes_books(build):
    # The first verses of each evaluation split: Ecclesiastes 1:1 and Proverbs 1:1.
    assert build.DEV_BOOKS[0] == "Ecclesiastes" and build.TEST_BOOKS[0] == "Proverbs"
    assert lines("dev", "en")[0].startswith("The words of the Preacher")
    assert lines("test", "en")[0].startswith("The proverbs of Solomon")
    readme = (BIBLE_DIR / "README.md").read_text()
    for book in build.DEV_BOOKS + build.TEST_BOOKS:
        assert f"{book} (" in readme


def test_data_bible_composes_and_its_splits_are_the_shipped_files():
    cfg = compose_config("train", ["data=bible"])
    data = OmegaConf.to_container(cfg.data, resolve=True)
    assert (data["name"], data["src"], data["tgt"]) == ("bible", "en", "es")
    assert data_dir("bible") == BIBLE_DIR
    for key, split in (("train", "train"), ("valid", "dev"), ("test", "test")):
        assert split_files(data[key], "en", "es") == [
            str(BIBLE_DIR / f"{split}.en.xz"),
            str(BIBLE_DIR / f"{split}.es.xz"),
        ]


@pytest.mark.parametrize(
    ("experiment", "src", "tgt"), [("bible_en_es", "en", "es"), ("bible_es_en", "es", "en")]
)
def test_bible_recipes_train_on_the_bible_in_their_direction(experiment, src, tgt):
    cfg = compose_config("train", [f"+experiment={experiment}"])
    assert (cfg.data.name, cfg.data.src, cfg.data.tgt) == ("bible", src, tgt)
    assert (cfg.model.hidden_size, cfg.train.max_minutes) == (512, 110)


# The builder's rules, on verses written in the test


def test_a_footnote_goes_with_its_text_and_leaves_a_space_only_between_words(build):
    markup = (
        'knew<note placement="foot">or, lay with</note><w lemma="x">Eve</w> his wife<note>a</note>.'
    )
    assert build.clean(markup) == "knew Eve his wife."


def test_editorial_titles_and_speakers_go_but_a_psalms_superscription_stays(build):
    markup = (
        '<title type="x-head">The Creation</title><speaker>Lover</speaker> '
        '<title canonical="true" type="psalm">A Psalm by David.</title><l/>Yahweh, hear me.'
    )
    assert build.clean(markup) == "A Psalm by David. Yahweh, hear me."


def test_text_after_a_chapters_end_is_not_verse_text(build):
    assert build.clean('Amen. <chapter eID="Rev.22"/> The following words &amp; more') == "Amen."


def test_added_words_are_spaced_but_an_added_pronoun_joins_its_verb(build):
    added = '<transChange type="added">{}</transChange>'
    markup = (
        "<w>hay allí</w>" + added.format("también") + "<w>bdelio</w>, <w>envía</w>"
        + added.format("lo") + " y <w>como</w>" + added.format("lo") + " dijo"
    )  # fmt: skip
    assert build.clean(markup) == "hay allí también bdelio, envíalo y como lo dijo"


def test_an_epistles_closing_note_on_where_it_was_written_is_cut(build):
    last = "La gracia sea con todos vosotros. Amén. Fué escrita á los Hebreos desde Italia."
    assert (
        build.strip_subscription(("Hebrews", 13, 25), last)
        == "La gracia sea con todos vosotros. Amén."
    )
    gospel = "Amén. Y fué escrita esta palabra."
    assert build.strip_subscription(("John", 21, 25), gospel) == gospel


@pytest.mark.parametrize(
    ("verse", "text", "expected"),
    [
        (1, "EN el principio crió Dios", "En el principio crió Dios"),
        (1, "DE VEINTICINCO años era Amasías", "De veinticinco años era Amasías"),
        (1, "Salmo de David. JÚZGAME, oh Jehová", "Salmo de David. Júzgame, oh Jehová"),
        (1, "ALEPH. BIENAVENTURADOS los perfectos", "ALEPH. Bienaventurados los perfectos"),
        (1, "Y YO me paré", "Y yo me paré"),
        (1, "REY DE REYES Y SEÑOR DE SEÑORES.", "REY DE REYES Y SEÑOR DE SEÑORES."),
        (2, "EL REY DE LOS JUDIOS, dijo", "EL REY DE LOS JUDIOS, dijo"),
    ],
)
def test_a_chapters_opening_capitals_become_sentence_case(build, verse, text, expected):
    assert build.normalise_drop_cap(("Genesis", 1, verse), text) == expected


def test_a_chapter_with_an_empty_spanish_verse_and_its_neighbours_are_not_trusted(build):
    es = {("Jonah", 1, 16): "Y temieron", ("Jonah", 1, 17): "", ("Jonah", 2, 1): "MAS Jehová"}
    assert build.renumbered(es) == {("Jonah", 0), ("Jonah", 1), ("Jonah", 2)}


def test_a_verse_shifted_by_one_is_not_paired_with_its_neighbours_translation(build):
    en = {("B", 1, v): "x" * n for v, n in enumerate([40, 200, 90, 150, 60, 250, 120], 1)}
    # The Spanish of verse 1 is missing and every later verse sits one reference early.
    es = {("B", 1, v): "y" * n for v, n in enumerate([200, 90, 150, 60, 250, 120, 30], 1)}
    assert build.pair(en, es) == {"B": []}
    assert [p[0] for p in build.pair(en, en)["B"]] == list(en)


def test_a_missing_mod2imp_names_the_apt_command(build, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(build.BuildError, match="apt-get install .*libsword-utils"):
        build.dump("engWEB2015eb")


def test_a_missing_module_is_named_with_the_apt_command(build, monkeypatch, tmp_path):
    fake = tmp_path / "mod2imp"  # answers as mod2imp does for a module it cannot find
    fake.write_text('#!/bin/sh\necho "mod2imp: Couldn\'t find module: $1" >&2\nexit 255\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(build.BuildError, match="spaRV1909eb .*apt-get install .*sword-text-sparv"):
        build.dump("spaRV1909eb")


def test_the_same_lines_compress_to_the_same_bytes(build, tmp_path):
    build.write_xz(tmp_path / "a.xz", ["uno", "dos"])
    build.write_xz(tmp_path / "b.xz", ["uno", "dos"])
    assert (tmp_path / "a.xz").read_bytes() == (tmp_path / "b.xz").read_bytes()
    assert lzma.decompress((tmp_path / "a.xz").read_bytes()) == b"uno\ndos\n"
