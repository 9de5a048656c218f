"""Tests for the demo corpus generator (data/demo/generate.py) and its committed output."""

from __future__ import annotations

import gzip
import importlib.metadata
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

DEMO_DIR = Path(__file__).resolve().parents[2] / "data" / "demo"
HEADER = ["en", "de", "es", "fr"]
# Rows per split as documented in data/demo/README.md.
SPLIT_ROWS = {"train": 28_000, "dev": 1_000, "test": 1_000}


@pytest.fixture(scope="module")
def gen() -> ModuleType:
    """The generator module, loaded from its file: it is a script, not part of ``nmt``."""
    pytest.importorskip("num2words")
    pytest.importorskip("babel")
    spec = importlib.util.spec_from_file_location("demo_generate", DEMO_DIR / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_split(path: Path) -> list[list[str]]:
    """Rows of a committed split, header included, as lists of fields."""
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        return [line.rstrip("\n").split("\t") for line in f]


@pytest.mark.parametrize(
    ("lang", "template", "parts", "expected"),
    [
        (
            "en",
            "ago",
            [(74, "year"), (1, "month"), (96, "day")],
            "seventy-four years, one month, and ninety-six days ago",
        ),
        (
            "de",
            "ago",
            [(74, "year"), (1, "month"), (96, "day")],
            "vor vierundsiebzig Jahren, einem Monat und sechsundneunzig Tagen",
        ),
        ("en", "in", [(3, "hour")], "in three hours"),
        ("de", "in", [(3, "hour")], "in drei Stunden"),
        ("en", "after", [(1, "week")], "after one week"),
        ("de", "after", [(1, "week")], "nach einer Woche"),
        ("en", "for", [(1, "year"), (2, "month")], "for one year and two months"),
        ("de", "for", [(1, "year"), (2, "month")], "ein Jahr und zwei Monate lang"),
        ("de", "for", [(1, "week")], "eine Woche lang"),
        ("de", "for", [(1, "day")], "einen Tag lang"),
        ("de", "in", [(1, "year")], "in einem Jahr"),
        ("de", "ago", [(5, "week"), (2, "minute")], "vor fünf Wochen und zwei Minuten"),
        (
            "es",
            "ago",
            [(74, "year"), (1, "month"), (96, "day")],
            "hace setenta y cuatro años, un mes y noventa y seis días",
        ),
        ("es", "in", [(1, "week")], "dentro de una semana"),
        ("es", "after", [(1, "hour")], "después de una hora"),
        ("es", "for", [(21, "year"), (21, "week")], "durante veintiún años y veintiuna semanas"),
        ("es", "for", [(31, "day")], "durante treinta y un días"),
        (
            "fr",
            "ago",
            [(74, "year"), (1, "month"), (96, "day")],
            "il y a soixante-quatorze ans, un mois et quatre-vingt-seize jours",
        ),
        ("fr", "in", [(1, "year"), (2, "month")], "dans un an et deux mois"),
        ("fr", "after", [(1, "week")], "après une semaine"),
        (
            "fr",
            "for",
            [(81, "hour"), (21, "minute")],
            "pendant quatre-vingt-une heures et vingt et une minutes",
        ),
        ("fr", "for", [(80, "day")], "pendant quatre-vingts jours"),
    ],
)
def test_render_writes_the_documented_translations(
    gen: ModuleType, lang: str, template: str, parts: list[tuple[int, str]], expected: str
) -> None:
    assert gen.render(lang, template, parts) == expected


@pytest.mark.parametrize(
    "parts",
    [
        [],
        [(0, "day")],
        [(100, "day")],
        [(1, "day"), (2, "year")],
        [(1, "day"), (2, "day")],
        [(1, "fortnight")],
    ],
)
def test_render_rejects_malformed_parts(gen: ModuleType, parts: list[tuple[int, str]]) -> None:
    with pytest.raises(ValueError):
        gen.render("en", "ago", parts)


def test_same_seed_gives_identical_rows(gen: ModuleType) -> None:
    assert gen.generate(seed=7, n=300) == gen.generate(seed=7, n=300)


def test_different_seed_gives_different_rows(gen: ModuleType) -> None:
    assert gen.generate(seed=7, n=300) != gen.generate(seed=8, n=300)


def test_generated_sources_are_unique_and_fields_filled(gen: ModuleType) -> None:
    rows = gen.generate(seed=3, n=2_000)
    assert len({row["en"] for row in rows}) == len(rows) == 2_000
    assert all(set(row) == set(HEADER) and all(row.values()) for row in rows)


def test_split_keeps_every_source_in_one_split(gen: ModuleType) -> None:
    rows = [{"en": f"s{i % 50}", "de": str(i), "es": "x", "fr": "y"} for i in range(150)]
    train, dev, test = gen.split(rows, seed=1, n_dev=5, n_test=10)
    sources = [{row["en"] for row in part} for part in (train, dev, test)]
    assert [len(s) for s in sources] == [35, 5, 10]
    assert not (sources[0] & sources[1] or sources[0] & sources[2] or sources[1] & sources[2])
    assert sorted(r["de"] for r in train + dev + test) == sorted(r["de"] for r in rows)


def test_version_mismatch_warns_instead_of_failing(
    gen: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(gen.PINNED, "babel", "0.0.1")
    with pytest.warns(UserWarning, match="babel"):
        messages = gen.check_versions()
    assert len(messages) == 1


def test_regenerating_reproduces_committed_files(gen: ModuleType, tmp_path: Path) -> None:
    for package, pinned in gen.PINNED.items():
        if importlib.metadata.version(package) != pinned:
            pytest.skip(f"{package} is not the pinned {pinned}; output may legitimately differ")
    gen.main(["--out", str(tmp_path)])
    for name in SPLIT_ROWS:
        file = f"{name}.tsv.gz"
        assert (tmp_path / file).read_bytes() == (DEMO_DIR / file).read_bytes(), file


@pytest.mark.parametrize("name", list(SPLIT_ROWS))
def test_committed_split_has_header_counts_and_full_fields(name: str) -> None:
    rows = read_split(DEMO_DIR / f"{name}.tsv.gz")
    assert rows[0] == HEADER
    assert len(rows) - 1 == SPLIT_ROWS[name]
    for row in rows[1:]:
        assert len(row) == len(HEADER) and all(field.strip() == field != "" for field in row), row


def test_committed_dev_and_test_sources_are_unseen_in_train() -> None:
    sources = {
        name: [row[0] for row in read_split(DEMO_DIR / f"{name}.tsv.gz")[1:]] for name in SPLIT_ROWS
    }
    train = set(sources["train"])
    assert not train & set(sources["dev"])
    assert not train & set(sources["test"])
    assert not set(sources["dev"]) & set(sources["test"])
    for name, split_sources in sources.items():
        assert len(set(split_sources)) == len(split_sources), f"repeated source in {name}"


def test_committed_files_are_small() -> None:
    total = sum((DEMO_DIR / f"{name}.tsv.gz").stat().st_size for name in SPLIT_ROWS)
    assert total < 3_000_000
