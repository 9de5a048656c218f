"""Fuzz the translator: many random Unicode lines, one output line for each?

    python bench/fuzz_translate.py --n 10000 --json fuzz.json [--run RUN_DIR]

Without --run, a tiny randomly initialised model and a SentencePiece model trained on a toy
corpus are used (a random model emits arbitrary pieces, byte pieces included, which is the
point). Each batch of lines goes through `Translator.translate`; a failure is an exception,
a wrong number of outputs, an output for a blank line, or an output holding a line break
(which would shift every later line of the output file). Prints the count, the failures by
kind and the time; writes the same, with a few examples of each kind, as JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import torch
from omegaconf import OmegaConf

from nmt.config import AttentionConfig, ModelConfig, TrainRunConfig
from nmt.data.tokenizer import Tokenizer, Vocabularies
from nmt.model import Seq2Seq
from nmt.translator import Translator

# Character pools, so that every kind of text comes up often, not once in a million draws.
POOLS = [
    "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,;:!?'\"-()",
    "äöüßéèêçñøåæœ ÄÖÜÉ",  # Latin with diacritics
    "\u0301\u0308\u0327\u20dd",  # combining marks
    "абвгдежзийклмнопрстуфхцчшщъыьэюя",
    "αβγδεζηθικλμνξοπρστυφχψω",
    "日本語のテキスト漢字かなカナ中文한국어",
    "العربية עברית \u200f\u200e\u202e",  # right to left, direction marks
    "हिन्दी தமிழ் ไทย ລາວ ကမ္ဘာ",
    "😀🇩🇪👩‍👩‍👧🏳️‍🌈\ufe0f\u200d",  # emoji, ZWJ sequences, variation selectors
    "ﬁﬂ①Ⅻ㎏Ａｂｃ½\u2126",  # NFKC changes these
    "\t\r\x0b\x0c\x1b\x7f\x85\u00a0\u2028\u2029\u200b\ufeff\u3000",  # odd whitespace, controls
    "\ue000\U000f0000\ufffd\U0001d54f▁",  # private use, replacement char, SentencePiece's ▁
]


def random_line(rng: random.Random) -> str:
    """A line of 0–120 characters from one or more pools (sometimes very long or blank)."""
    shape = rng.random()
    if shape < 0.05:
        return ""
    if shape < 0.10:
        return "".join(rng.choice(" \t\u3000\u00a0") for _ in range(rng.randint(1, 5)))
    pools = rng.sample(POOLS, rng.randint(1, 3))
    length = rng.randint(1, 2000) if shape > 0.99 else rng.randint(1, 120)
    return "".join(rng.choice(rng.choice(pools)) for _ in range(length))


def toy_translator(folder: Path, seed: int) -> Translator:
    words = [
        "alpha",
        "bravo",
        "charlie",
        "delta",
        "echo",
        "foxtrot",
        "golf",
        "hotel",
        "Grüße",
        "日本語",
        "ψ",
    ]
    rng = random.Random(seed)
    corpus = [" ".join(rng.sample(words, 4)) for _ in range(200)]
    tokenizer = Tokenizer.train(corpus, folder / "spm.model", vocab_size=300)
    torch.manual_seed(seed)
    model = Seq2Seq.build(
        ModelConfig(emb_size=8, hidden_size=8, dec_hidden_size=16, dropout=0.0),
        AttentionConfig(size=8),
        tokenizer.vocab_size,
        tokenizer.vocab_size,
    )
    config = OmegaConf.structured(TrainRunConfig)
    config.decode.max_len_a, config.decode.max_len_b = 0.5, 8
    return Translator(model, Vocabularies(tokenizer, tokenizer, True), config, torch.device("cpu"))


def problems(lines: list[str], out: list[str]) -> list[tuple[str, int]]:
    """(kind, index) of every property the outputs break."""
    if len(out) != len(lines):
        return [("output count", -1)]
    found = []
    for i, (line, hyp) in enumerate(zip(lines, out, strict=True)):
        if not line.strip() and hyp:
            found.append(("output for a blank line", i))
        if len((hyp + ".").splitlines()) > 1:  # any character str.splitlines() ends a line at
            found.append(("line break in output", i))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="input lines")
    parser.add_argument("--batch", type=int, default=100, help="lines per translate() call")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run", help="a run directory to fuzz instead of a random model")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        translator = (
            Translator.load(args.run, device="cpu")
            if args.run
            else toy_translator(Path(tmp), args.seed)
        )
        rng = random.Random(args.seed)
        kinds: Counter[str] = Counter()
        examples: dict[str, list[dict]] = {}
        start, done = time.perf_counter(), 0
        while done < args.n:
            lines = [random_line(rng) for _ in range(min(args.batch, args.n - done))]
            try:
                out = translator.translate_text(lines)
                found = problems(lines, out)
            except Exception as err:  # a crash is a finding, not the end of the run
                out, found = [], [(f"exception {type(err).__name__}: {err}"[:200], -1)]
            for kind, i in found:
                kinds[kind] += 1
                if len(examples.setdefault(kind, [])) < 5:
                    examples[kind].append(
                        {
                            "input": lines[i] if i >= 0 else lines[:3],
                            "output": out[i] if i >= 0 else None,
                        }
                    )
            done += len(lines)
        seconds = time.perf_counter() - start
    failing = sum(kinds.values())
    print(f"inputs: {done:,}  failures: {failing:,}  time: {seconds:.1f}s")
    for kind, count in kinds.most_common():
        print(f"  {kind}: {count:,}")
    if args.json:
        result = {
            "inputs": done,
            "failures": failing,
            "by_kind": dict(kinds),
            "examples": examples,
            "seconds": round(seconds, 2),
            "seed": args.seed,
            "model": args.run or "random tiny model",
        }
        Path(args.json).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
