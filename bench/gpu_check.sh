#!/usr/bin/env bash
# The GPU path, checked on a lent GPU in one go of at most 8 minutes (issue 23):
#   1. the cuda-marked tests (tests/cuda: training steps, cuDNN's packed encoder, greedy and
#      beam search, score() and nmt-train on CUDA against the CPU);
#   2. a short training of the comparison model (BiGRU 512, Bahdanau, 4096-token batches) on
#      the embedded demo corpus, a fixed number of updates: target tokens/s;
#   3. the same in bf16 and fp16 where nmt.config has train.precision;
#   4. decoding that model: greedy and beam-5 sentences/s (bench/beam_speed.py, batch 64);
#   5. JoeyNMT 2.3.0's training speed on the same data and pieces, where it can be installed;
#   6. gpu_check.json: the GPU (nvidia-smi), torch, CUDA and cuDNN versions, every figure, each
#      step's exit status and seconds; beside it gpu_check.log and beam_speed.json.
# Results go to $OUT when set (the device tool sets it), else bench/results/gpu-<date>/.
# Every step runs under `timeout`, cut to what is left of TOTAL_S: a step that hangs costs
# its box, never the rest.
#
#   bash bench/gpu_check.sh wheels       HERE, first: the packages the GPU image lacks
#                                        (hydra-core, omegaconf, antlr4; JoeyNMT and its
#                                        pins), as wheels in .whl/ (git-ignored), for the
#                                        device tool's carry=[".whl"]
#   bash bench/gpu_check.sh              on the GPU machine (python3 there holds torch)
#   DEVICE=cpu PYTHON=.venv/bin/python bash bench/gpu_check.sh
#                                        a smoke run of every step on the CPU (about 1 min)
#
# Knobs (environment): DEVICE (cuda), PYTHON (python3), TOTAL_S (470), UPDATES (150 after
# WARMUP 20), SENTENCES (1000 decoded), WORK (/tmp/nmt-gpu-check), JOEY_PYTHONPATH (more
# folders for JoeyNMT's imports where PYTHON lacks some: tensorboard, seaborn, pandas).
set -uo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"

if [ "${1:-}" = wheels ]; then
    # pure-Python wheels only (built from the sdist where PyPI has no wheel: antlr4 4.9.3);
    # sentencepiece has no build < 0.2 for the image's CPython 3.12: see joey_main below
    set -e
    rm -rf .whl/nmt .whl/joeynmt
    py=(python3 -m pip)
    "${py[@]}" wheel -q --no-deps -w .whl/nmt hydra-core==1.3.8 omegaconf==2.3.1 \
        antlr4-python3-runtime==4.9.3
    "${py[@]}" wheel -q --no-deps -w .whl/joeynmt joeynmt==2.3.0 subword-nmt==0.3.8 \
        importlib_metadata==8.7.0 zipp==3.23.0
    ls -l .whl/nmt .whl/joeynmt
    du -sh .whl
    exit 0
fi

device="${DEVICE:-cuda}"
PY="${PYTHON:-python3}"
total="${TOTAL_S:-470}"
deadline=$(($(date +%s) + total))
out="${OUT:-$repo/bench/results/gpu-$(date +%Y-%m-%d)}"
work="${WORK:-/tmp/nmt-gpu-check}"
small=()  # the smoke run on the CPU: every step, with a tiny model on small batches
if [ "$device" = cpu ]; then
    warmup="${WARMUP:-2}" updates="${UPDATES:-4}" sentences="${SENTENCES:-16}" valid=32 every=1
    small=(model.emb_size=32 model.hidden_size=32 model.dec_hidden_size=32 attention.size=32
        data.batch_tokens=400 threads=1)
    export OMP_NUM_THREADS=1  # a smoke run beside other work: one core
else
    warmup="${WARMUP:-20}" updates="${UPDATES:-150}" sentences="${SENTENCES:-1000}" valid=500
    every=10
fi
rm -rf "$work"
mkdir -p "$out" "$work/runs"
steps="$work/steps.jsonl"
exec > >(tee "$out/gpu_check.log") 2>&1
echo "gpu_check: device=$device python=$PY out=$out work=$work budget ${total}s"

# box NAME SECONDS CMD...: run CMD under timeout, at most what is left (20 s kept for the
# summary); one line per step in steps.jsonl: its exit status (124: cut off) and seconds
box() {
    local name=$1 budget=$2 start rc
    shift 2
    local left=$((deadline - $(date +%s) - 20))
    [ "$left" -lt "$budget" ] && budget=$left
    start=$(date +%s)
    if [ "$budget" -le 5 ]; then
        echo "== $name: skipped, out of time"
        rc=125
    else
        echo "== $name (at most ${budget}s)"
        timeout -k 5 "$budget" "$@"
        rc=$?
    fi
    echo "{\"step\": \"$name\", \"rc\": $rc, \"seconds\": $(($(date +%s) - start))}" >>"$steps"
    return $rc
}

# -- 0. Python: the image's (torch there), the carried wheels on top; else a venv from PyPI --
site=/tmp/nmt-gpu-site
if [ -d .whl/nmt ]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$site" \
        .whl/nmt/*.whl
fi
export PYTHONPATH="$site:$repo${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
needs='import torch, hydra, omegaconf, sentencepiece, sacrebleu, tqdm, matplotlib, pytest'
if ! "$PY" -c "$needs" 2>/dev/null; then
    # a machine that reaches a registry: a venv over $PY's packages, torch's default (CUDA)
    # build where $PY has no torch, then nmt with its extras
    echo "== setup: $PY lacks nmt's packages; a venv with them from the registry"
    v="$work/venv/bin/python"
    box setup 240 bash -c "set -e; '$PY' -m venv --system-site-packages '$work/venv'
        '$v' -c 'import torch' 2>/dev/null || '$v' -m pip install -q torch
        '$v' -m pip install -q -e '.[dev,data]'"
    PY="$v"
fi
"$PY" - "$work/versions.json" <<'EOF'
import json, platform, shutil, subprocess, sys
import torch

query = ["--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]
smi = shutil.which("nvidia-smi")
gpu = subprocess.run([smi, *query], capture_output=True, text=True).stdout.strip() if smi else ""
v = {
    "gpu": gpu,
    "torch": torch.__version__,
    "cuda": torch.version.cuda,
    "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
    "cuda_available": torch.cuda.is_available(),
    "device_name": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    "python": platform.python_version(),
}
print(v)
json.dump(v, open(sys.argv[1], "w"), indent=1)
EOF

# -- 1. the cuda-marked tests -----------------------------------------------------------------
box pytest 150 "$PY" -m pytest -q -m cuda -p no:cacheprovider tests/cuda | tee "$work/pytest.txt"

# -- 2. data: the demo corpus as bench/speed.py's work folder (de→en, one SentencePiece) ------
box data 60 "$PY" - "$work" "$valid" <<'EOF'
import csv, gzip, sys
from pathlib import Path
from nmt.config import DataConfig
from nmt.data.tokenizer import Vocabularies
from nmt.resources import demo_dir

work, valid = Path(sys.argv[1]), int(sys.argv[2])
(work / "data" / "src-only").mkdir(parents=True, exist_ok=True)
for split, name, limit in (("train", "train", 0), ("val", "dev", valid), ("test", "test", 0)):
    with gzip.open(demo_dir() / f"{name}.tsv.gz", "rt", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    rows = rows[:limit] if limit else rows
    for lang in ("de", "en"):
        (work / "data" / f"{split}.{lang}").write_text("".join(r[lang] + "\n" for r in rows))
(work / "data" / "src-only" / "test.de").write_text((work / "data" / "test.de").read_text())
cfg = DataConfig(name="files", src="de", tgt="en", train="", valid="", vocab_size=1000)
src = (work / "data" / "train.de").read_text().splitlines()
tgt = (work / "data" / "train.en").read_text().splitlines()
vocabs = Vocabularies.train(src, tgt, work, cfg)
pieces = [vocabs.src.sp.id_to_piece(i) for i in range(vocabs.src.vocab_size)]
(work / "vocab.txt").write_text("".join(p + "\n" for p in pieces))
print(f"{len(src)} training pairs, {len(pieces)} pieces")
EOF

# -- 2, 3. our training: fp32, then each lower precision nmt.config offers ---------------------
ours_train() {  # ours_train NAME [overrides...]
    local run="$work/runs/$1"
    shift
    mkdir -p "$run" && cp "$work/spm.model" "$run/spm.model"
    box "train-${run##*/}" 75 "$PY" -m nmt.cli.train data=files data.src=de data.tgt=en \
        "data.train=$work/data/train" "data.valid=$work/data/val" model=gru attention=bahdanau \
        optim.scheduler=none optim.clip_norm=1.0 optim.lr=0.001 data.batch_tokens=4096 \
        "device=$device" progress=false "train.max_updates=$((warmup + updates))" \
        train.max_epochs=0 "train.log_every=$every" "train.valid_every=$((warmup + updates))" \
        "hydra.run.dir=$run" "${small[@]}" "$@"
}
ours_train ours-fp32
precisions=$("$PY" -c 'from nmt.config import ALLOWED
print(*[p for p in ALLOWED.get("train.precision", ()) if p != "fp32"])')
for p in $precisions; do
    if [ "$p" = fp16 ] && [ "$device" = cpu ]; then continue; fi  # fp16 is CUDA's alone
    ours_train "ours-$p" "train.precision=$p"
done

# -- 4. decoding speed: greedy and beam 5, batch 64, on the fp32 model -------------------------
box decode 90 "$PY" bench/beam_speed.py "run=$work/runs/ours-fp32" "input=$work/data/test.de" \
    "json=$out/beam_speed.json" beams=5 batches=64 "limit=$sentences" checkpoint=last \
    "device=$device" "hyp_dir=$work/hyp"

# -- 5. JoeyNMT on the same data: carried wheels, its own venv, or setup.sh where pip reaches --
joey=()
if [ -d .whl/joeynmt ]; then
    joey_site=/tmp/nmt-gpu-joey
    "$PY" -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$joey_site" \
        .whl/joeynmt/*.whl &&
        joey=(env "PYTHONPATH=$joey_site${JOEY_PYTHONPATH:+:$JOEY_PYTHONPATH}" "$PY")
elif [ -x bench/peers/joeynmt/.venv/bin/python ]; then
    joey=(bench/peers/joeynmt/.venv/bin/python)
elif [ "$device" != cpu ] && box joeynmt-setup 150 bash bench/peers/joeynmt/setup.sh; then
    joey=(bench/peers/joeynmt/.venv/bin/python)
fi
if [ ${#joey[@]} -gt 0 ]; then
    cuda=true && [ "$device" = cpu ] && cuda=false
    config=$("$PY" - "$work" "$cuda" $((warmup + updates)) "$every" <<'EOF'
import sys
from pathlib import Path

sys.path.insert(0, "bench")
from speed_common import joey_config

work, cuda, updates, every = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
run = work / "runs" / "joey-train"
print(joey_config(work, run, use_cuda=cuda, updates=updates, logging_freq=every))
EOF
)
    if [ ${#small[@]} -gt 0 ]; then  # the smoke run's tiny model, as ours
        sed -i -e 's/batch_size: 4096/batch_size: 400/' -e 's/hidden_size: 512/hidden_size: 32/' \
            -e 's/embedding_dim: 256/embedding_dim: 32/' "$config"
    fi
    # joey_main: JoeyNMT's `python -m joeynmt`. With sentencepiece >= 0.2 (the GPU image's;
    # no older build exists for its Python) SentencePieceProcessor has no SetVocabulary,
    # which JoeyNMT calls with the whole vocabulary: restricting the pieces to all of them
    # changes nothing, so a no-op stands in for it there.
    joey_main='import runpy, sentencepiece as sp
if not hasattr(sp.SentencePieceProcessor, "SetVocabulary"):
    sp.SentencePieceProcessor.SetVocabulary = lambda self, pieces: 0
runpy.run_module("joeynmt", run_name="__main__", alter_sys=True)'
    box joeynmt-train 90 "${joey[@]}" -c "$joey_main" train "$config" --skip-test
else
    echo "== joeynmt: not installed (no .whl/joeynmt, no venv, no registry); left out"
fi

# -- 6. the summary -----------------------------------------------------------------------------
"$PY" - "$work" "$out" "$device" "$warmup" "$updates" <<'EOF'
import json, re, statistics, sys
from pathlib import Path

sys.path.insert(0, "bench")
from speed_common import cpu_info, joey_rates, ours_rates

work, out, device = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
warmup, updates = int(sys.argv[4]), int(sys.argv[5])
steps = [json.loads(line) for line in (work / "steps.jsonl").read_text().splitlines()]
summary = {"device": device, **json.loads((work / "versions.json").read_text())}
summary["cpu"] = cpu_info()
summary["steps"] = steps
tests = (work / "pytest.txt").read_text() if (work / "pytest.txt").is_file() else ""
counts = re.findall(r"(\d+) (passed|failed|skipped|error|errors|deselected)", tests)
summary["tests"] = {kind: int(n) for n, kind in counts}
train = {}
for run in sorted((work / "runs").glob("ours-*")):
    if (run / "metrics.csv").is_file() and (rates := ours_rates(run, warmup)):
        train[run.name] = {"tokens_per_s": round(statistics.mean(rates)), "windows": len(rates)}
joey = work / "runs" / "joey-train"
if (joey / "train.log").is_file() and (rates := joey_rates(joey, warmup)):
    train["joeynmt"] = {"tokens_per_s": round(statistics.mean(rates)), "windows": len(rates)}
if "ours-fp32" in train and "joeynmt" in train:
    train["ours_fp32_over_joeynmt"] = round(
        train["ours-fp32"]["tokens_per_s"] / train["joeynmt"]["tokens_per_s"], 2
    )
summary["train"] = {"warmup": warmup, "updates_after_warmup": updates, **train}
decode = {}
if (out / "beam_speed.json").is_file():
    speed = json.loads((out / "beam_speed.json").read_text())
    decode = {r["strategy"]: r["sentences_per_s"] for r in speed["results"]}
    decode["sentences"] = speed["sentences"]
    ref = (work / "data" / "test.en").read_text().splitlines()[: speed["sentences"]]
    decode["mean_reference_words"] = round(statistics.mean(len(x.split()) for x in ref), 2)
    for hyp in sorted((work / "hyp").glob("hyp.*.txt")):
        words = [len(x.split()) for x in hyp.read_text().splitlines()]
        decode[f"mean_output_words.{hyp.stem[4:]}"] = round(statistics.mean(words), 2)
summary["decode"] = decode
(out / "gpu_check.json").write_text(json.dumps(summary, indent=1) + "\n")
shown = ("gpu", "torch", "cuda", "tests", "train", "decode")
print(json.dumps({k: summary[k] for k in shown}, indent=1))
print(f"wrote {out / 'gpu_check.json'}")
EOF
