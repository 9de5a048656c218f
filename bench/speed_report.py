"""bench/speed.py's report: one table from every stage's results file, printed and written
with the stages' results to work/speed.json (the growth curves to work/growth.png)."""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

from speed_common import cpu_info, cpu_slug, load, peer_versions, read, write_results
from speed_plot import plot, print_growth

SIDES = ("ours", "joeynmt")
MEASURED = ("train", "budget", "decode", "shared", "growth", "flops")  # the stages it reads
# issue 23's goals: ours ÷ JoeyNMT (× for speed, peak memory), MFU, loaded ÷ idle
TRAIN_SPEEDUP, BF16_SPEEDUP, MEMORY, MFU_GOAL = 3.0, 5.0, 0.7, 0.5
LOADED_SPEEDUP, LOADED_KEEPS = 2.5, 0.4  # beside busy processes: ÷ JoeyNMT's, ÷ our idle
# (figure, search label, the ratio it needs): the decode and shared stages' speed rows
DECODE_SPEEDS = (
    ("greedy sentences/s", "greedy", 5.0),
    ("beam5 sentences/s (ours: exact stop)", "beam5", 5.0),
    ("beam5, both stop at K ended (early)", "beam5-early", 5.0),
)
SHARED_SPEEDS = (
    ("greedy, same weights", "greedy", 5.0),
    ("beam5, same weights (ours: exact)", "beam5", 5.0),
    ("beam5, same weights, both early", "beam5-early", 5.0),
)
OUTPUTS = ("greedy", "b5", "b5-early")  # the hypothesis files of our searches
# what each measured stage gives the table, for the line naming the stages not run yet
GIVES = {
    "train": "training tokens/s, peak RSS; MFU with flops",
    "budget": "equal-budget models, which decode measures",
    "decode": "greedy and beam-5 sentences/s, BLEU after the budget",
    "shared": "decoding speed on one set of weights in both toolkits",
    "growth": "decode time against beam width",
    "flops": "the matmul limit of MFU",
}


def paired(runs: list[dict], value, peer: str = "joeynmt") -> tuple[float, float, float, list]:
    """Medians of ours and the peer's figure, and the median of the A/B ratios per repeat."""
    ours = {r["repeat"]: value(r) for r in runs if r["side"] == "ours"}
    joey = {r["repeat"]: value(r) for r in runs if r["side"] == peer}
    ratios = [ours[k] / joey[k] for k in ours if k in joey]
    loads = [r["load_start"][0] for r in runs]
    return (
        statistics.median(ours.values()),
        statistics.median(joey.values()),
        statistics.median(ratios),
        loads,
    )


def side_median(runs: list[dict], side: str, value) -> float:
    """Median of value(run) over one side's runs (ours | joeynmt)."""
    return statistics.median(value(x) for x in runs if x["side"] == side)


def speed(key: str):
    """value(run) for `paired`: sentences/s of search `key` (greedy, beam5, beam5-early).
    JoeyNMT's beam has one stopping rule, K ended, under the plain label (its "beam5")."""
    return lambda x: x["sentences_per_s"][key if x["side"] == "ours" else key.split("-")[0]]


def div(x: float, y: float) -> float:
    return x / y if y else float("nan")


def mean_rate(run: dict) -> float:
    return statistics.mean(run["rates"])


def peak_rss(run: dict) -> float:
    return run["peak_rss_mb"]


def row(name: str, ours, joey, ratio: float, goal: str, ok: bool | None, loads: list) -> dict:
    """One line of the table: the figure, both sides (3 decimals), their ratio (2), the goal
    and whether it is met (None: no goal), and the 1-minute load at the start of each run."""
    return {
        "figure": name,
        "ours": ours if ours is None else round(ours, 3),
        "joeynmt": joey if joey is None else round(joey, 3),
        "ratio": round(ratio, 2),
        "goal": goal,
        "met": ok,
        "load_1min": loads,
    }


def at_least(value: float, need: float, unit: str = "x") -> tuple[str, bool]:
    """A goal's label and whether value meets it: value ≥ need."""
    return f">= {need:g}{unit}", value >= need


def at_most(value: float, need: float, unit: str = "x") -> tuple[str, bool]:
    """A goal's label and whether value meets it: value ≤ need."""
    return f"<= {need:g}{unit}", value <= need


def train_rows(tr: dict) -> list[dict]:
    o, j, r, ld = paired(tr["runs"], mean_rate)
    rows = [row("train target tokens/s", round(o), round(j), r, *at_least(r, TRAIN_SPEEDUP), ld)]
    o, j, r, ld = paired(tr["runs"], peak_rss)
    rows.append(row("train peak RSS MB", o, j, r, *at_most(r, MEMORY), ld))
    if any(x["side"] == "opennmt" and x["rates"] for x in tr["runs"]):  # the second peer
        o, n, r, ld = paired(tr["runs"], mean_rate, "opennmt")
        rows.append(
            row("train tok/s, OpenNMT-py in its column", round(o), round(n), r, "", None, ld)
        )
    return rows


def budget_loads(bu: dict) -> list[float]:
    """The 1-minute load at the start of each budget run (none without the budget stage)."""
    return [bu["ours"]["load_start"][0], bu["joeynmt"]["load_start"][0]] if bu else []


def decode_speed_rows(de: dict) -> list[dict]:
    rows = []
    for name, key, need in DECODE_SPEEDS:
        if all(key in x["sentences_per_s"] for x in de["runs"] if x["side"] == "ours"):
            o, j, r, ld = paired(de["runs"], speed(key))
            rows.append(row(name, o, j, r, *at_least(r, need), ld))
    o, j, r, ld = paired(de["runs"], peak_rss)
    return [*rows, row("decode peak RSS MB", o, j, r, *at_most(r, MEMORY), ld)]


def budget_bleu_rows(de: dict, bu: dict) -> list[dict]:
    """BLEU of the budget models, and (they differ in how much they say) the speed per
    output token of beam 5 with both stopping early."""
    q, ld = de["quality"], budget_loads(bu)
    o, j = q["ours.greedy"]["bleu"], q["joey.greedy"]["bleu"]
    name = f"BLEU greedy after {bu.get('minutes', '?')} min"
    rows = [row(name, o, j, div(o, j), ">= JoeyNMT", o >= j, ld)]
    o, j = q["ours.b5"]["bleu"], q["joey.b5"]["bleu"]
    rows.append(row("BLEU beam-5 (same models)", o, j, div(o, j), "", o >= j, ld))
    if "ours.b5-early" in q:
        o = q["ours.b5-early"]["bleu"]
        rows.append(row("BLEU beam-5, both stop early", o, j, div(o, j), "", o >= j, ld))
        ours = side_median(de["runs"], "ours", lambda x: x["sentences_per_s"]["beam5-early"])
        joey = side_median(de["runs"], "joeynmt", lambda x: x["sentences_per_s"]["beam5"])
        o, j = q["ours.b5-early"]["mean_tokens"] * ours, q["joey.b5"]["mean_tokens"] * joey
        rows.append(row("beam5 early, output tokens/s", o, j, div(o, j), "", None, []))
    return rows


def output_length_rows(de: dict) -> list[dict]:
    q, rows = de["quality"], []
    for name in OUTPUTS:
        if f"ours.{name}" in q:
            o = q[f"ours.{name}"]["mean_tokens"]
            j = q[f"joey.{name.split('-')[0]}"]["mean_tokens"]
            rows.append(row(f"mean output tokens, {name}", o, j, div(o, j), "", None, []))
    return rows


def decode_rows(de: dict, bu: dict) -> list[dict]:
    return [*decode_speed_rows(de), *budget_bleu_rows(de, bu), *output_length_rows(de)]


def budget_rows(bu: dict) -> list[dict]:
    o, j = bu["ours"]["updates"], bu["joeynmt"]["updates"]
    return [row("updates in the budget", o, j, div(o, j), "", None, budget_loads(bu))]


def shared_rows(sh: dict) -> list[dict]:
    """One set of weights in both toolkits: the like-for-like decoding rows."""
    rows = []
    for name, key, need in SHARED_SPEEDS:
        o, j, r, ld = paired(sh["runs"], speed(key))
        rows.append(row(name, o, j, r, *at_least(r, need), ld))
    o, j, r, ld = paired(sh["runs"], peak_rss)
    rows.append(row("decode peak RSS MB, same weights", o, j, r, *at_most(r, MEMORY), ld))
    q = sh["quality"]
    for name in OUTPUTS:
        o, j = q[f"ours.{name}"], q[f"joey.{name.split('-')[0]}"]
        for figure, key in (("BLEU", "bleu"), ("mean output tokens", "mean_tokens")):
            ratio = div(o[key], j[key])
            rows.append(row(f"same weights {name}: {figure}", o[key], j[key], ratio, "", None, []))
    n, same = sh["sentences"], sh["greedy_identical"]
    return [*rows, row("same weights: identical greedy outputs", same, n, same / n, "", None, [])]


def mfu_rows(fl: dict, tr: dict) -> list[dict]:
    """Model (and hardware) FLOPs utilisation: training tokens/s × FLOPs per target token
    against the fastest fp32 matmul rate the flops stage measured."""
    rate = {side: side_median(tr["runs"], side, mean_rate) for side in SIDES}
    limit = fl["matmul"]["limit_gflops"]
    per_token = fl["model"]["analytic"]["train_per_target_token"]
    counted = fl["model"]["counted"]["train_per_target_token"]
    mfu = {k: v * per_token / 1e9 / limit for k, v in rate.items()}
    ours, joey = mfu["ours"], mfu["joeynmt"]
    name, loads = f"MFU (useful FLOPs / {limit:.0f} GFLOP/s)", [fl["load_start"][0]]
    goal = at_least(ours, MFU_GOAL, unit="")
    rows = [row(name, round(ours, 3), round(joey, 3), ours / joey, *goal, loads)]
    mm_limit = fl["matmul"].get("mm_limit_gflops", limit)
    if mm_limit != limit:  # the limit is oneDNN's: MFU against torch.mm's (MKL) rate too
        name = f"MFU against torch.mm's {mm_limit:.0f} GFLOP/s (MKL, torch's default)"
        o, j = round(ours * limit / mm_limit, 3), round(joey * limit / mm_limit, 3)
        rows.append(row(name, o, j, ours / joey, "", None, []))
    hfu = round(rate["ours"] * counted / 1e9 / limit, 3)
    return [*rows, row("HFU (executed FLOPs incl. padding)", hfu, None, float("nan"), "", None, [])]


def growth_rows(gr: dict) -> list[dict]:
    """Beam 10 against greedy; met when every width up to 10 costs less than width × greedy."""
    base = {r["batch_size"]: r["seconds"] for r in gr["beam"] if r["strategy"] == "greedy"}
    ok = all(
        r["seconds"] / base[r["batch_size"]] < r["beam_size"]
        for r in gr["beam"]
        if 1 < r["beam_size"] <= 10
    )
    t10 = [r["relative_to_greedy"] for r in gr["beam"] if r["beam_size"] == 10]
    loads = [gr["beam"][0]["load"][0]]
    name, goal = "beam-10 time / greedy time", "< 10 (sub-linear)"
    return [row(name, t10[0] if t10 else None, None, float("nan"), goal, ok, loads)]


def loaded_rows(tr: dict, busy: dict) -> list[dict]:
    """Training beside busy processes (the train-busy stage) against idle (train)."""
    o, j, r, ld = paired(busy["runs"], mean_rate)
    oi, ji, _, _ = paired(tr["runs"], mean_rate)
    n = busy.get("busy", 1)
    label, kept = at_least(o / oi, LOADED_KEEPS, unit="")
    return [
        row(
            f"train tok/s beside {n} busy", round(o), round(j), r, *at_least(r, LOADED_SPEEDUP), ld
        ),
        row("train loaded ÷ idle", o / oi, j / ji, div(o / oi, j / ji), f"ours {label}", kept, ld),
    ]


def bf16_rows(tr: dict, bf16: dict) -> list[dict]:
    """Ours in bf16 (the train-bf16 stage) against JoeyNMT fp32 in the same stage, and against
    our fp32 figure of the train stage."""
    o, j, r, ld = paired(bf16["runs"], mean_rate)
    oi = paired(tr["runs"], mean_rate)[0] if tr else float("nan")
    return [
        row(
            "train tok/s, ours bf16 vs JoeyNMT fp32",
            round(o),
            round(j),
            r,
            *at_least(r, BF16_SPEEDUP),
            ld,
        ),
        row(
            "train tok/s, ours bf16 (ratio: ÷ ours fp32)", round(o), None, div(o, oi), "", None, ld
        ),
    ]


def table(results: dict[str, dict]) -> list[dict]:
    """The table's rows from each stage's results (a stage not run: {})."""
    tr, bu, de, sh, gr, fl = (results[s] for s in MEASURED)
    rows = train_rows(tr) if tr else []
    rows += loaded_rows(tr, results["train-busy"]) if tr and results.get("train-busy") else []
    rows += bf16_rows(tr, results["train-bf16"]) if results.get("train-bf16") else []
    rows += decode_rows(de, bu) if de else []
    rows += budget_rows(bu) if bu else []
    rows += shared_rows(sh) if sh else []
    rows += mfu_rows(fl, tr) if fl and tr else []
    return rows + (growth_rows(gr) if gr else [])


def print_table(rows: list[dict]) -> None:
    print(
        f"\n{'figure':<38} {'ours':>10} {'JoeyNMT':>10} {'ratio':>7} {'goal':>18} {'met':>5}  load"
    )
    for r in rows:
        cells = [("" if v is None else str(v)) for v in (r["ours"], r["joeynmt"])]
        ratio = "" if r["ratio"] != r["ratio"] else f"{r['ratio']:.2f}"
        met = "" if r["met"] is None else ("yes" if r["met"] else "NO")
        print(
            f"{r['figure']:<38} {cells[0]:>10} {cells[1]:>10} {ratio:>7} {r['goal']:>18} "
            f"{met:>5}  {r['load_1min']}"
        )


def missing(results: dict[str, dict]) -> list[str]:
    """The measured stages with no results file yet (the table leaves their rows out)."""
    return [stage for stage in MEASURED if not results[stage]]


def write_run(a: dict, work: Path, loads: dict) -> Path | None:
    """bench/results/<date>-<cpu>.json (`results` folder; <date>-<cpu>-2.json and so on where
    the day's file exists): the machine, torch's and the peers'
    versions, the threads, the load during the run (`loads`), every figure and ratio of the
    table, the stages not measured, and each stage's results as work/results holds them; nothing
    where work/results holds no figure yet (a file of the day would be replaced by an empty one)."""
    import torch

    results = {stage: read(work, stage) for stage in (*MEASURED, "train-busy", "train-bf16")}
    cpu = cpu_info()
    stem = f"{time.strftime('%Y-%m-%d')}-{cpu_slug(cpu)}"
    path, n = Path(a["results"]) / f"{stem}.json", 1
    while path.exists():  # a result written earlier today, maybe committed, is kept
        n += 1
        path = path.with_name(f"{stem}-{n}.json")
    if not any(results.values()):  # e.g. stages=prepare on a fresh work: nothing to record,
        print(f"no figure measured yet in {work}/results: {path} not written")  # nor to replace
        return None
    extra = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "torch": torch.__version__,
        "peers": peer_versions(),
        "threads": int(a["threads"]),
        "torch_threads": torch.get_num_threads(),
        "load": {**loads, "end": load()},
        "missing": missing(results),
    }
    write_results(path, a, table(results), results, extra)
    return path


def report(a: dict, work: Path) -> dict:
    """Print the table (and the growth curves), write work/speed.json (and work/growth.png)."""
    results = {stage: read(work, stage) for stage in (*MEASURED, "train-busy", "train-bf16")}
    rows = table(results)
    print_table(rows)
    for stage in missing(results):
        print(f"not measured: {stage} ({GIVES[stage]}); run bench/speed.py stages={stage}")
    gr = results["growth"]
    if gr:
        print_growth(gr)
        plot(gr, work / "growth.png")
    full = {
        "table": rows,
        # the shared stage's results stay in results/shared.json alone
        **{s: results[s] for s in ("train", "budget", "decode", "growth", "flops")},
        "machine": os.uname().machine,
        "cpus": os.cpu_count(),
    }
    (work / "speed.json").write_text(json.dumps(full, indent=2) + "\n")
    print(f"\nwrote {work / 'speed.json'}" + (f" and {work / 'growth.png'}" if gr else ""))
    return full
