"""Build the Bible corpus: English (World English Bible) ↔ Spanish (Reina-Valera 1909).

Both texts are public domain and come as SWORD modules in Debian. `mod2imp` dumps each
module's verses with their references; this script strips the OSIS markup (notes, editorial
titles and speaker labels with their text, every other tag), pairs the verses that carry the
same reference, checks each book's pairing against the verses' lengths (Gale & Church 1993)
so that a verse the Spanish module numbers differently is dropped instead of paired with its
neighbour's translation, and writes whole books to train, dev or test so no passage leaks.
Rebuild, byte for byte, with

    apt-get install -y --no-install-recommends libsword-utils sword-text-web sword-text-sparv
    python data/bible/build.py --out data/bible

which writes {train,dev,test}.{en,es}.xz: UTF-8, one verse a line, the two sides aligned
line by line. data/bible/README.md documents the sources, the split and what is dropped.
"""

from __future__ import annotations

import argparse
import html
import lzma
import math
import re
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

MODULES = {"en": "engWEB2015eb", "es": "spaRV1909eb"}
APT = "apt-get install -y --no-install-recommends libsword-utils sword-text-web sword-text-sparv"

# Whole books, by the modules' names for them; every other book both modules have is train.
# Books with few passages that recur elsewhere (the Gospels retell each other, Kings and
# Chronicles share chapters), from both testaments, ~1,300 and ~1,800 verses.
DEV_BOOKS = ("Ecclesiastes", "Acts", "James")
TEST_BOOKS = ("Proverbs", "John", "Philippians")
# The epistles whose last verse the Reina-Valera closes, after its final "Amén.", with the
# King James tradition's note on where the letter was written ("Fué escrita de Corinto…");
# the WEB has no such notes.
EPISTLES = (
    "Romans", "I Corinthians", "II Corinthians", "Galatians", "Ephesians", "Philippians",
    "Colossians", "I Thessalonians", "II Thessalonians", "I Timothy", "II Timothy", "Titus",
    "Philemon", "Hebrews",
)  # fmt: skip

Ref = tuple[str, int, int]  # (book, chapter, verse)


class BuildError(Exception):
    """A problem the person running the script can fix; main() prints it on one line."""


def dump(module: str) -> str:
    """The module's raw text as `mod2imp` writes it: `$$$Book C:V` lines, each followed by
    that verse's OSIS markup."""
    try:
        done = subprocess.run(["mod2imp", module], capture_output=True, text=True)
    except FileNotFoundError:
        raise BuildError(f"mod2imp is not installed; install it with: {APT}") from None
    if done.returncode != 0 or "$$$" not in done.stdout:
        said = next((line.strip() for line in done.stderr.splitlines() if line.strip()), "")
        raise BuildError(
            f"mod2imp could not read the SWORD module {module} ({said or 'no verses'}); "
            f"install it with: {APT}"
        )
    return done.stdout


def parse_imp(text: str) -> dict[Ref, str]:
    """Each verse's raw markup by reference, in the module's order; headings (`[ Module
    Heading ]`) and chapter or book introductions (verse 0) are left out."""
    verses: dict[Ref, str] = {}
    for record in re.split(r"^\$\$\$", text, flags=re.M)[1:]:
        ref, _, body = record.partition("\n")
        m = re.fullmatch(r"(.+) (\d+):(\d+)", ref.strip())
        if m and int(m[3]) > 0:
            verses[(m[1], int(m[2]), int(m[3]))] = body
    return verses


# Elements dropped with their text: footnotes, cross-references, editorial headings and the
# Song of Songs' speaker labels (a psalm's superscription is canonical text and stays).
_DROPPED = re.compile(
    r"<note\b.*?</note>|<speaker\b.*?</speaker>|<title\b(?![^>]*canonical=\"true\")[^>]*>.*?</title>",
    re.S,
)
# Elements that end a line or paragraph: a word boundary, whatever the spacing around them.
_BLOCK = re.compile(r"</?(?:div|p|l|lg|lb|list|item|chapter|milestone|title)\b[^>]*>")
_ADDED = re.compile(r"<transChange\b[^>]*>(.*?)</transChange>", re.S)
_TAG = re.compile(r"<[^>]*>")
_GAP = "\x00"  # where a dropped element was: a space only if it sat between two words
_WORD_GAP = re.compile(r"(?<=\w)\x00+(?=\w)")
# Spanish object pronouns written onto their verb: "envía" + added "lo" is "envíalo".
_CLITICS = {"lo", "la", "los", "las", "le", "les", "me", "te", "se", "nos", "os"}
# Words before an added pronoun that are not verbs ("como lo", "no lo", "Dios lo"), seen in
# the Reina-Valera's added words.
_NOT_VERBS = {
    "y", "que", "no", "como", "de", "os", "ellos", "cuánto", "gentes", "dios", "jehová", "josué",
}  # fmt: skip


def clean(markup: str) -> str:
    """A verse's plain text: OSIS markup and dropped elements removed, entities decoded,
    whitespace collapsed to single spaces."""
    end = markup.find("<chapter eID")  # what follows a book's last verse is not verse text
    if end >= 0:
        markup = markup[:end]
    text = _DROPPED.sub(_GAP, markup)
    text = _BLOCK.sub(" ", text)
    text = _ADDED.sub(_added_words, text)
    text = _TAG.sub("", text)
    text = _WORD_GAP.sub(" ", text).replace(_GAP, "")
    text = " ".join(html.unescape(text).split())
    return re.sub(r"(?<=\w) (?=[,.;:!?])", "", text)  # "coins</q> <note/> ?": "coins?"


def _added_words(m: re.Match[str]) -> str:
    """The Reina-Valera's words added by the translators (italic in print), set off from the
    words they touch: the markup often leaves out the space ("hay allí<added>también")."""
    words = _TAG.sub("", m[1])
    verb = re.search(r"\w+$", _TAG.sub("", m.string[: m.start()]))
    if verb and words in _CLITICS and verb[0].lower() not in _NOT_VERBS:
        return words + _GAP  # an enclitic pronoun, written onto the verb before it
    return _GAP + words + _GAP


def strip_subscription(ref: Ref, text: str) -> str:
    """The Spanish text of an epistle's last verse without the note on where the letter was
    written; any other verse unchanged."""
    if ref[0] not in EPISTLES:
        return text
    head, amen, tail = text.rpartition("Amén.")
    if amen and re.search(r"escrita|enviada", tail, re.I):
        return head + amen
    return text


def normalise_drop_cap(ref: Ref, text: str) -> str:
    """The Reina-Valera prints a chapter's first word (or two) in capitals ("EN el principio
    crió Dios"); sentence case ("En el principio") matches the English. Only verse 1 is
    touched, and only its first run of capitals, when a word in lower case follows it: an
    inscription ("REY DE REYES") or an acrostic letter ("ALEPH. Bienaventurados") stays."""
    if ref[2] != 1:
        return text
    upper = r"[^\W\d_a-zß-ÿ]+"
    for m in re.finditer(rf"(?<!\w){upper}(?: {upper})*(?!\w)", text):
        if max(len(word) for word in m[0].split()) < 2:
            continue  # "Y", "Á": a capital letter, not a word in capitals
        if re.match(r"[,;:]? [^\W\d_]*[a-zß-ÿ]", text[m.end() :]):
            return text[: m.start()] + m[0][0] + m[0][1:].lower() + text[m.end() :]
        if not text.startswith(".", m.end()):
            break  # a heading such as an acrostic's "ALEPH." may come before the capitals
    return text


def verses(module_text: str, lang: str) -> dict[Ref, str]:
    """Each of a module's verses as plain text, "" where the module has the reference but
    no text."""
    out = {}
    for ref, markup in parse_imp(module_text).items():
        text = clean(markup)
        if lang == "es":
            text = normalise_drop_cap(ref, strip_subscription(ref, text))
        out[ref] = text
    return out


def renumbered(es: dict[Ref, str]) -> set[tuple[str, int]]:
    """The chapters, as (book, chapter), where the Spanish text follows its own numbering.

    The Reina-Valera module stores its text under the King James numbering, and where the
    Spanish numbering differs (Numbers 12:16 is its 13:1, Jonah 1:17 its 2:1, Job 38:39–41
    its 39:1–3) it leaves a verse empty and moves the text to a neighbouring reference,
    shifting or merging the verses around it. Such a chapter and the chapters either side
    of it are not trusted. (An empty verse of the WEB is one its Greek text omits, such as
    Acts 8:37: nothing moves, and the verse alone is dropped.)"""
    chapters = set()
    for (book, chapter, _), text in es.items():
        if not text:
            chapters |= {(book, chapter - 1), (book, chapter), (book, chapter + 1)}
    return chapters


# Gale & Church (1993): a translation's length in characters is about `ratio` times the
# original's (measured on the corpus), with variance S2 per character; PRIORS are the
# probabilities of the alignment beads (English verses, Spanish verses).
S2 = 6.8
PRIORS = {
    (1, 1): 0.89,
    (1, 0): 0.0099 / 2,
    (0, 1): 0.0099 / 2,
    (2, 1): 0.089 / 2,
    (1, 2): 0.089 / 2,
}
BAND = 20  # how far (in verses) the alignment may wander from the verse numbers


# A pair whose lengths are further apart than this (p < .05) is, on inspection, mostly one
# the two texts divide differently ("For there are three who testify:" against the Spanish
# verse that goes on "en el cielo, el Padre, el Verbo…").
MAX_Z = 2.0


def length_z(src: int, tgt: int, ratio: float) -> float:
    """How many standard deviations tgt characters are from what src characters predict."""
    mean = (src + tgt / ratio) / 2
    return abs(src * ratio - tgt) / math.sqrt(S2 * mean) if mean else 0.0


def bead_cost(src: int, tgt: int, ratio: float, prior: float) -> float:
    """−log P(bead) for src characters against tgt characters (Gale & Church's match cost)."""
    x = length_z(src, tgt, ratio) / math.sqrt(2)
    tail = math.erfc(x)  # P(|N(0,1)| ≥ z)
    log_tail = math.log(tail) if tail > 1e-300 else -x * x - math.log(x * math.sqrt(math.pi))
    return -math.log(prior) - log_tail


def align(src: Sequence[int], tgt: Sequence[int], ratio: float) -> list[tuple[int, int]]:
    """The (i, j) pairs that the cheapest length-based alignment of two verse sequences
    (character lengths src and tgt) matches one to one."""
    n, m = len(src), len(tgt)
    band = BAND + abs(n - m)
    inf = math.inf
    cost = {(0, 0): 0.0}
    back: dict[tuple[int, int], tuple[int, int]] = {}
    for i in range(n + 1):
        for j in range(max(0, i - band), min(m, i + band) + 1):
            if (i, j) == (0, 0):
                continue
            best, step = inf, (0, 0)
            for (di, dj), prior in PRIORS.items():
                here = cost.get((i - di, j - dj))
                if here is None:
                    continue
                c = here + bead_cost(sum(src[i - di : i]), sum(tgt[j - dj : j]), ratio, prior)
                if c < best:
                    best, step = c, (di, dj)
            if best < inf:
                cost[(i, j)], back[(i, j)] = best, step
    if (n, m) not in cost:
        return []
    pairs, at = [], (n, m)
    while at != (0, 0):
        di, dj = back[at]
        at = (at[0] - di, at[1] - dj)
        if (di, dj) == (1, 1):
            pairs.append(at)
    return pairs[::-1]


def pair(en: dict[Ref, str], es: dict[Ref, str]) -> dict[str, list[tuple[Ref, str, str]]]:
    """Each book's verse pairs, in the English module's book order: a verse is kept when both
    modules have text for it under the same reference, its chapter is not renumbered, and the
    length-based alignment of the whole book matches those two verses one to one, with
    lengths no further apart than MAX_Z allows."""
    skip = renumbered(es)
    en = {r: t for r, t in en.items() if t and r[:2] not in skip}
    es = {r: t for r, t in es.items() if t and r[:2] not in skip}
    same = [r for r in en if r in es]
    ratio = sum(len(es[r]) for r in same) / sum(len(en[r]) for r in same)
    books: dict[str, list[tuple[Ref, str, str]]] = {}
    for book in dict.fromkeys(r[0] for r in same):
        src = sorted((r for r in en if r[0] == book), key=lambda r: r[1:])
        tgt = sorted((r for r in es if r[0] == book), key=lambda r: r[1:])
        matched = align([len(en[r]) for r in src], [len(es[r]) for r in tgt], ratio)
        books[book] = [
            (src[i], en[src[i]], es[tgt[j]])
            for i, j in matched
            if src[i] == tgt[j] and length_z(len(en[src[i]]), len(es[tgt[j]]), ratio) <= MAX_Z
        ]
    return books


def split(
    books: dict[str, list[tuple[Ref, str, str]]],
) -> dict[str, list[tuple[Ref, str, str]]]:
    """Train, dev and test by whole books. A dev or test pair whose English or Spanish also
    occurs in train (formulas such as "Yahweh spoke to Moses, saying,") is dropped, and a
    test pair whose text occurs in dev, so no line of an evaluation split was trained on."""
    for name in DEV_BOOKS + TEST_BOOKS:
        if name not in books:
            raise BuildError(f"the split names the book {name!r}, which the modules do not share")
    parts: dict[str, list[tuple[Ref, str, str]]] = {"train": [], "dev": [], "test": []}
    for book, pairs in books.items():
        part = "dev" if book in DEV_BOOKS else "test" if book in TEST_BOOKS else "train"
        parts[part].extend(pairs)
    seen = {text for _, en, es in parts["train"] for text in (en, es)}
    for part in ("dev", "test"):
        parts[part] = [p for p in parts[part] if p[1] not in seen and p[2] not in seen]
        seen |= {text for _, en, es in parts[part] for text in (en, es)}
    return parts


def write_xz(path: Path, lines: Iterable[str]) -> None:
    """Lines to an xz file, byte for byte the same for the same lines (xz records no time or
    name; the preset is fixed)."""
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    path.write_bytes(lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=9))


def report(
    en: dict[Ref, str],
    es: dict[Ref, str],
    books: dict[str, list[tuple[Ref, str, str]]],
    parts: dict[str, list[tuple[Ref, str, str]]],
) -> list[str]:
    """Where the verses went, one line each: what each module has, what pairing and splitting
    dropped, and each split's size (the counts README.md's tables give)."""
    full = {lang: {r for r, t in side.items() if t} for lang, side in (("en", en), ("es", es))}
    shared = full["en"] & full["es"]
    skip = renumbered(es)
    trusted = {r for r in shared if r[:2] not in skip}
    kept = sum(len(p) for p in books.values())
    evaluated = sum(len(p) for b, p in books.items() if b in DEV_BOOKS + TEST_BOOKS)
    lines = [
        f"verses with text: en {len(full['en'])}, es {len(full['es'])}, both {len(shared)}",
        f"only in en (books or verses es lacks): {len(full['en'] - full['es'])}; "
        f"only in es: {len(full['es'] - full['en'])}",
        f"in renumbered chapters ({len(skip & {r[:2] for r in shared})}): {len(shared - trusted)}",
        f"not matched one to one, or too unequal in length: {len(trusted) - kept}",
        f"dev/test pairs whose text occurs in an earlier split: "
        f"{evaluated - len(parts['dev']) - len(parts['test'])}",
    ]
    for name, pairs in parts.items():
        lines.append(f"{name}: {len(pairs)} pairs, {len({p[0][0] for p in pairs})} books")
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    """Dump both modules, pair and split their verses, write the six files (entry point)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("data/bible"), help="output folder")
    args = parser.parse_args(argv)
    try:
        en, es = (verses(dump(MODULES[lang]), lang) for lang in ("en", "es"))
        books = pair(en, es)
        parts = split(books)
    except BuildError as e:
        sys.exit(f"error: {e}")
    args.out.mkdir(parents=True, exist_ok=True)
    for name, pairs in parts.items():
        for side, lang in ((1, "en"), (2, "es")):
            write_xz(args.out / f"{name}.{lang}.xz", (p[side] for p in pairs))
    print("\n".join(report(en, es, books, parts)))


if __name__ == "__main__":
    main()
