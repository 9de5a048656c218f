"""bench/speed.py's decoding stages: decode (the budget models) and shared (one set of
weights in both toolkits), each alternating ours and JoeyNMT's runs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from speed_common import HERE, PEER, joey_config, joey_python, timed_run
from speed_train import ours_budget


def mean_tokens(work: Path, hyp_file: Path) -> float:
    """Mean output length in subword tokens, EOS included: both sides re-encoded alike."""
    from nmt.data.tokenizer import Tokenizer

    lines = hyp_file.read_text(encoding="utf-8").splitlines()
    ids = Tokenizer.load(work / "spm.model").encode(lines)
    return round(sum(len(x) + 1 for x in ids) / len(ids), 2)


def bleu(hyp_file: Path, ref_file: Path) -> float:
    import sacrebleu

    hyps = hyp_file.read_text(encoding="utf-8").splitlines()
    refs = ref_file.read_text(encoding="utf-8").splitlines()
    return round(sacrebleu.corpus_bleu(hyps, [refs]).score, 2)


def test_subset(work: Path, limit: int) -> tuple[Path, Path, Path]:
    """test2016's first `limit` lines (0 = all): source, reference, JoeyNMT's source prefix."""
    data = work / "data"
    if not limit:
        return data / "test.de", data / "test.en", data / "src-only" / "test"
    sub = data / f"first{limit}"
    (sub / "src-only").mkdir(parents=True, exist_ok=True)
    for lang in ("de", "en"):
        lines = (data / f"test.{lang}").read_text(encoding="utf-8").splitlines(keepends=True)
        (sub / f"test.{lang}").write_text("".join(lines[:limit]), encoding="utf-8")
    shutil.copy(sub / "test.de", sub / "src-only" / "test.de")
    return sub / "test.de", sub / "test.en", sub / "src-only" / "test"


def decode(a: dict, work: Path) -> dict:
    """Greedy and beam-5 on test2016 with each budget model, alternating; BLEU, lengths."""
    return decode_pairs(a, work, "budget")


def shared(a: dict, work: Path) -> dict:
    """Both toolkits decode with one set of weights: ours trained `budget_min` minutes with
    model.output_bias=false (as JoeyNMT's layer), converted by peers/joeynmt/convert.py."""
    run = work / "runs" / "ours-shared"
    if not (run / "checkpoints" / "last.pt").exists():
        print(
            f"shared ours: {ours_budget(a, work, run.name, ('model.output_bias=false',))}",
            flush=True,
        )
    convert = [sys.executable, str(PEER / "convert.py"), str(run / "checkpoints" / "last.pt")]
    subprocess.run([*convert, str(work / "runs" / "joey-shared")], check=True)
    out = decode_pairs(a, work, "shared")
    hyps = {
        side: (work / "hyps" / f"{side}-shared-0" / "hyp.greedy.txt")
        .read_text("utf-8")
        .splitlines()
        for side in ("ours", "joey")
    }
    out["greedy_identical"] = sum(o == j for o, j in zip(hyps["ours"], hyps["joey"], strict=True))
    out["sentences"] = len(hyps["ours"])
    return out


def decode_pairs(a: dict, work: Path, models: str) -> dict:
    """Alternating decode runs of runs/ours-<models> and runs/joey-<models>; BLEU, lengths."""
    threads, limit = int(a["threads"]), int(a["decode_limit"])
    test, ref, joey_test = test_subset(work, limit)
    tag = "" if models == "budget" else f"-{models}"  # the decode stage keeps its file names
    runs = []
    for r in range(int(a["repeat"])):
        hyp = work / "hyps" / f"ours{tag}-{r}"
        name = f"ours{tag}-decode-{r}"
        cmd = [
            sys.executable,
            str(HERE / "beam_speed.py"),
            f"run={work / 'runs' / f'ours-{models}'}",
            f"input={test}",
            f"json={work / 'runs' / f'{name}.json'}",
            "beams=5",
            "batches=64",
            f"hyp_dir={hyp}",
            f"threads={threads}",
            "length_penalty=gnmt",
            "alpha=1.0",
            "stops=exact,early",  # ours as shipped, and with JoeyNMT's stopping rule
            "checkpoint=last",
        ]
        res = timed_run(cmd, work / "runs" / f"{name}.log", threads)
        runs.append(_decode_record(res, "ours", r, work / "runs" / f"{name}.json"))
        print(
            f"decode{tag} ours #{r}: {res['sentences_per_s']}, load {res['load_start']}", flush=True
        )
        hyp = work / "hyps" / f"joey{tag}-{r}"
        config = joey_config(work, work / "runs" / f"joey-{models}", test=joey_test)
        out = work / "runs" / f"joey{tag}-decode-{r}.json"
        cmd = [
            joey_python(),
            str(PEER / "decode.py"),
            str(config),
            "1,5",
            str(out),
            str(hyp),
            str(threads),
        ]
        res = timed_run(cmd, work / "runs" / f"joey{tag}-decode-{r}.log", threads)
        runs.append(_decode_record(res, "joeynmt", r, out))
        print(
            f"decode{tag} joeynmt #{r}: {res['sentences_per_s']}, load {res['load_start']}",
            flush=True,
        )
    quality = {}
    for side, names in (("ours", ("greedy", "b5", "b5-early")), ("joey", ("greedy", "b5"))):
        for name in names:
            f = work / "hyps" / f"{side}{tag}-0" / f"hyp.{name}.txt"
            quality[f"{side}.{name}"] = {"bleu": bleu(f, ref), "mean_tokens": mean_tokens(work, f)}
    return {"runs": runs, "quality": quality}


def _decode_record(res: dict, side: str, repeat: int, results: Path) -> dict:
    """A timed decode run with the speed of each search its results file reports, by label:
    greedy, beam5 (and ours' beam5-early)."""
    rows = json.loads(results.read_text())["results"]

    def label(row: dict) -> str:  # JoeyNMT's rows name only the beam width
        k = row["beam_size"]
        return row.get("strategy") or ("greedy" if k == 1 else f"beam{k}")

    res.update(
        side=side, repeat=repeat, sentences_per_s={label(r): r["sentences_per_s"] for r in rows}
    )
    return res
