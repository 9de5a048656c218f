"""Build the embedded demo corpus: English duration phrases with German, Spanish, French.

Each line pairs an English phrase such as "seventy-four years, one month, and ninety-six
days ago" with its German ("vor vierundsiebzig Jahren, einem Monat und sechsundneunzig
Tagen"), Spanish and French translations. Phrases combine one to three time units (year,
month, week, day, hour, minute), largest first, each counted 1-99 in words, under one of
four templates: "... ago", "in ...", "after ...", "for ...". The vocabulary is small and
every English phrase has exactly one translation per language, yet the targets need real
reordering (German "... lang", French "il y a ...") and morphology (German dative plural
and gendered "ein", Spanish "veintiún"/"veintiuna", French "une"), so a small attention
model learns it in minutes on a CPU.

Numbers are spelled by num2words; babel's CLDR plural rules choose singular or plural
unit nouns. The output depends on their versions, so the pinned ones are checked and a
mismatch is warned about. Regenerate, byte for byte, with

    python data/demo/generate.py --out data/demo --seed 1234

which writes train.tsv.gz, dev.tsv.gz and test.tsv.gz: UTF-8 TSV with the header
``en<TAB>de<TAB>es<TAB>fr``, split by unique English source so that no dev or test source
occurs in train.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.metadata
import random
import re
import warnings
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from babel import Locale
from num2words import num2words

LANGS = ("en", "de", "es", "fr")
UNITS = ("year", "month", "week", "day", "hour", "minute")  # largest first
TEMPLATES = ("ago", "in", "after", "for")
MAX_COUNT = 99
PINNED = {"num2words": "0.5.14", "babel": "2.18.0"}

# (singular, plural, grammatical gender) of each unit noun.
NOUNS: dict[str, dict[str, tuple[str, str, str]]] = {
    "en": {
        "year": ("year", "years", ""),
        "month": ("month", "months", ""),
        "week": ("week", "weeks", ""),
        "day": ("day", "days", ""),
        "hour": ("hour", "hours", ""),
        "minute": ("minute", "minutes", ""),
    },
    "de": {
        "year": ("Jahr", "Jahre", "n"),
        "month": ("Monat", "Monate", "m"),
        "week": ("Woche", "Wochen", "f"),
        "day": ("Tag", "Tage", "m"),
        "hour": ("Stunde", "Stunden", "f"),
        "minute": ("Minute", "Minuten", "f"),
    },
    "es": {
        "year": ("año", "años", "m"),
        "month": ("mes", "meses", "m"),
        "week": ("semana", "semanas", "f"),
        "day": ("día", "días", "m"),
        "hour": ("hora", "horas", "f"),
        "minute": ("minuto", "minutos", "m"),
    },
    "fr": {
        "year": ("an", "ans", "m"),
        "month": ("mois", "mois", "m"),
        "week": ("semaine", "semaines", "f"),
        "day": ("jour", "jours", "m"),
        "hour": ("heure", "heures", "f"),
        "minute": ("minute", "minutes", "f"),
    },
}

# Per template: the frame around the joined units and, for German, the case it governs.
FRAMES: dict[str, dict[str, str]] = {
    "en": {"ago": "{} ago", "in": "in {}", "after": "after {}", "for": "for {}"},
    "de": {"ago": "vor {}", "in": "in {}", "after": "nach {}", "for": "{} lang"},
    "es": {"ago": "hace {}", "in": "dentro de {}", "after": "después de {}", "for": "durante {}"},
    "fr": {"ago": "il y a {}", "in": "dans {}", "after": "après {}", "for": "pendant {}"},
}
GERMAN_CASE = {"ago": "dat", "in": "dat", "after": "dat", "for": "acc"}
GERMAN_ONE = {
    ("dat", "m"): "einem",
    ("dat", "n"): "einem",
    ("dat", "f"): "einer",
    ("acc", "m"): "einen",
    ("acc", "n"): "ein",
    ("acc", "f"): "eine",
}
CONJUNCTION = {"en": "and", "de": "und", "es": "y", "fr": "et"}

# Probability of drawing 1 for a unit count: "one" carries the gender and case agreement
# the model must learn, which a uniform 1-99 draw would show only 1% of the time.
P_ONE = 0.1
# How often a phrase has 1, 2 or 3 units; one-unit phrases are few (6 x 99 per template).
UNIT_COUNT_WEIGHTS = (0.2, 0.4, 0.4)


@cache
def _locale(lang: str) -> Locale:
    return Locale.parse(lang)


@cache
def is_singular(lang: str, n: int) -> bool:
    """Tell whether ``n`` takes the singular noun in ``lang`` by CLDR plural rules."""
    # French CLDR puts 0 and 1 in 'one'; only 'one' selects the singular in all four.
    return _locale(lang).plural_form(n) == "one"


@cache
def number_words(lang: str, n: int, gender: str, case: str = "") -> str:
    """Spell ``n`` in ``lang`` as it stands before a noun of ``gender`` (and German ``case``)."""
    if lang == "de" and n == 1:
        # num2words gives the counting form "eins"; before a noun it inflects like "ein".
        return GERMAN_ONE[case, gender]
    words = num2words(n, lang=lang)
    if lang == "es" and words.endswith("uno"):
        if gender == "f":
            return words[:-1] + "a"  # una, veintiuna, treinta y una
        # Apocope before a masculine noun; "veintiún" keeps the stress with an accent.
        return "veintiún" if words == "veintiuno" else words[:-1]
    if lang == "fr" and gender == "f":
        return re.sub(r"(^|[ -])un$", r"\1une", words)  # une, vingt et une, quatre-vingt-une
    return words


def join(lang: str, items: Sequence[str]) -> str:
    """Join list items the way ``lang`` does: "a, b, and c" in English, "a, b und c" in German."""
    if len(items) == 1:
        return items[0]
    conjunction = CONJUNCTION[lang]
    if len(items) == 2:
        return f"{items[0]} {conjunction} {items[1]}"
    # Only English writes the serial (Oxford) comma before the conjunction.
    comma = "," if lang == "en" else ""
    return f"{', '.join(items[:-1])}{comma} {conjunction} {items[-1]}"


def render(lang: str, template: str, parts: Sequence[tuple[int, str]]) -> str:
    """Write a duration phrase in ``lang``.

    Args:
        lang: one of ``LANGS``.
        template: one of ``TEMPLATES`` ("ago", "in", "after", "for").
        parts: (count, unit) pairs, units from ``UNITS`` in strictly decreasing size,
            counts 1-``MAX_COUNT``; e.g. ``[(74, "year"), (1, "month"), (96, "day")]``.

    Raises:
        ValueError: for an unknown language, template or unit, a count out of range, or
            units not in decreasing order.
    """
    if lang not in LANGS or template not in TEMPLATES:
        raise ValueError(f"unknown language {lang!r} or template {template!r}")
    if not parts:
        raise ValueError("a phrase needs at least one (count, unit) part")
    positions = []
    for n, unit in parts:
        if unit not in UNITS:
            raise ValueError(f"unknown unit {unit!r}; expected one of {UNITS}")
        if not 1 <= n <= MAX_COUNT:
            raise ValueError(f"count {n} for {unit!r} is outside 1-{MAX_COUNT}")
        positions.append(UNITS.index(unit))
    if positions != sorted(set(positions)):
        raise ValueError(f"units must be distinct and largest first, got {parts}")

    case = GERMAN_CASE[template] if lang == "de" else ""
    items = []
    for n, unit in parts:
        singular, plural, gender = NOUNS[lang][unit]
        noun = singular if is_singular(lang, n) else plural
        if case == "dat" and noun == plural and not noun.endswith("n"):
            noun += "n"  # German dative plural: Jahren, Tagen (but Wochen, Minuten)
        items.append(f"{number_words(lang, n, gender, case)} {noun}")
    return FRAMES[lang][template].format(join(lang, items))


def _draw_parts(rng: random.Random) -> list[tuple[int, str]]:
    k = rng.choices((1, 2, 3), weights=UNIT_COUNT_WEIGHTS)[0]
    units = sorted(rng.sample(UNITS, k), key=UNITS.index)
    return [(1 if rng.random() < P_ONE else rng.randint(2, MAX_COUNT), u) for u in units]


def generate(seed: int, n: int) -> list[dict[str, str]]:
    """Draw ``n`` rows with distinct English sources, each a dict keyed by ``LANGS``.

    The same seed (and library versions) always gives the same rows in the same order.
    """
    rng = random.Random(seed)
    rows: list[dict[str, str]] = []
    seen: set[str] = set()
    attempts = 0
    while len(rows) < n:
        attempts += 1
        if attempts > 100 * n + 1000:
            raise RuntimeError(f"could not draw {n} distinct phrases in {attempts} tries")
        template = rng.choice(TEMPLATES)
        parts = _draw_parts(rng)
        source = render("en", template, parts)
        if source in seen:
            continue
        seen.add(source)
        rows.append({lang: render(lang, template, parts) for lang in LANGS})
    return rows


def split(
    rows: Sequence[dict[str, str]], seed: int, n_dev: int, n_test: int
) -> tuple[list[dict[str, str]], list[dict[str, str]], list[dict[str, str]]]:
    """Shuffle unique English sources and cut them into (train, dev, test).

    ``n_dev`` and ``n_test`` count unique sources; all rows of a source go to the same
    split, so no dev or test source occurs in train or in each other.
    """
    by_source: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_source.setdefault(row["en"], []).append(row)
    sources = list(by_source)
    if n_dev + n_test > len(sources):
        raise ValueError(f"{n_dev} dev + {n_test} test > {len(sources)} unique sources")
    random.Random(seed).shuffle(sources)
    cuts = (sources[:n_test], sources[n_test : n_test + n_dev], sources[n_test + n_dev :])
    test, dev, train = ([row for s in part for row in by_source[s]] for part in cuts)
    return train, dev, test


def write_tsv_gz(path: Path, rows: Sequence[dict[str, str]]) -> None:
    """Write ``rows`` as gzipped UTF-8 TSV with a header; the same rows give the same bytes."""
    lines = ["\t".join(LANGS)]
    for row in rows:
        fields = [row[lang] for lang in LANGS]
        if any(not f or "\t" in f or "\n" in f for f in fields):
            raise ValueError(f"field empty or holding a tab/newline in {fields}")
        lines.append("\t".join(fields))
    data = ("\n".join(lines) + "\n").encode("utf-8")
    # mtime=0 and an empty stored name keep the gzip header free of time and path.
    with path.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as f:
        f.write(data)


def check_versions() -> list[str]:
    """Warn about each installed num2words/babel version that differs from ``PINNED``.

    Returns the warning messages (empty when everything matches).
    """
    messages = []
    for package, pinned in PINNED.items():
        installed = importlib.metadata.version(package)
        if installed != pinned:
            messages.append(
                f"{package} {installed} is installed but the corpus was built with {pinned}; "
                "spellings or CLDR plural rules may differ from the committed files"
            )
    for message in messages:
        warnings.warn(message, stacklevel=2)
    return messages


def main(argv: Sequence[str] | None = None) -> None:
    """Generate the corpus and write the three splits (command-line entry point)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("data/demo"), help="output folder")
    parser.add_argument("--seed", type=int, default=1234, help="seed for drawing and splitting")
    parser.add_argument("--size", type=int, default=30_000, help="unique English sources")
    parser.add_argument("--dev", type=int, default=1_000, help="dev sources")
    parser.add_argument("--test", type=int, default=1_000, help="test sources")
    args = parser.parse_args(argv)

    check_versions()
    rows = generate(args.seed, args.size)
    train_dev_test = split(rows, args.seed, args.dev, args.test)
    splits = dict(zip(("train", "dev", "test"), train_dev_test, strict=True))
    args.out.mkdir(parents=True, exist_ok=True)
    for name, part in splits.items():
        path = args.out / f"{name}.tsv.gz"
        write_tsv_gz(path, part)
        print(f"{path}: {len(part)} rows, {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
