"""Bad input to every command: one clear error line and a non-zero exit, or handled by design.

ROWS is the one table: the tests run each row through its console command as a user would,
and `python -m tests.reliability.test_bad_inputs` runs them again and prints the table as
markdown (input | command | what the user gets). An error row expects exit status 2 and, on
stderr, exactly one line "error: …" holding the row's phrase and no traceback (nmt-train's
log lines may come before it). A handled row states what the command does instead and
checks it. After every row, each file the user had (the row's own inputs and run copies,
and the shared trained run) is still there, byte for byte.
"""

from __future__ import annotations

import functools
import hashlib
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import cli_command, cli_env, files_overrides, toy_pairs
from tests.reliability.conftest import FAST

Setup = Callable[[Path, Path], None]  # (the row's folder, the shared trained run)

PAIRS = toy_pairs(12)
TOY_XX = "".join(s + "\n" for s, _ in PAIRS)
TOY_YY = "".join(t + "\n" for _, t in PAIRS)
MEGA = ("alpha bravo charlie delta " * 40_000)[:1_000_000]  # one 1 MB line


@dataclass(frozen=True)
class Outcome:
    """What a user saw after running one row."""

    returncode: int
    stdout: str
    stderr: str
    folder: Path
    run: Path  # the shared trained run
    changed: list[str]  # files the user had that are gone or differ afterwards
    seconds: float


@dataclass(frozen=True)
class Row:
    """One bad input: how to make it, how to run the command, and what the user must get."""

    id: str
    command: str  # train | translate | evaluate
    input: str  # the bad input, in words (the table's "input" column)
    args: tuple[str, ...] = ()  # {tmp}: the row's folder, {run}: the trained run; {toy} (train)
    setup: Setup | None = None
    error: str | None = None  # a phrase of the one error line; None: handled by design
    handled: str = ""  # what the command does by design (the table's "outcome" column)
    check: Callable[[Outcome], None] | None = None  # more to assert, for either kind
    stdin: bytes | None = None
    stdout: str | None = None  # a file for the command's standard output (default: captured)
    prelude: str = ""  # Python run first in the command's own process, to simulate a fault
    new_run_dir: bool = True  # train: add hydra.run.dir={tmp}/new-run unless the row names one
    slow: bool = False  # trains or translates for long: marked slow (make test-fast skips it)


# -- making the rows' files ---------------------------------------------------------------


def write(files: dict[str, str | bytes]) -> Setup:
    def setup(folder: Path, run: Path) -> None:
        for name, content in files.items():
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content.encode() if isinstance(content, str) else content)

    return setup


def corpus(xx: str | bytes = TOY_XX, yy: str | bytes = TOY_YY) -> Setup:
    """The toy training corpus data/train.{xx,yy}, either side replaced."""
    valid = {"data/valid.xx": TOY_XX, "data/valid.yy": TOY_YY}
    return write({"data/train.xx": xx, "data/train.yy": yy, **valid})


def mkdirs(*names: str) -> Setup:
    def setup(folder: Path, run: Path) -> None:
        for name in names:
            (folder / name).mkdir(parents=True)

    return setup


def run_copy(change: Callable[[Path], None] = lambda run: None) -> Setup:
    """A copy of the trained run at {tmp}/run, then changed (a file removed, truncated…)."""

    def setup(folder: Path, run: Path) -> None:
        shutil.copytree(run, folder / "run")
        change(folder / "run")

    return setup


def truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def checkpoint_copy(how: Callable[[bytes], bytes]) -> Setup:
    """{tmp}/model.pt made from the trained run's best.pt."""
    return lambda folder, run: (folder / "model.pt").write_bytes(
        how((run / "checkpoints" / "best.pt").read_bytes())
    )


def pickled_checkpoint(folder: Path, run: Path) -> None:
    """A checkpoint whose unpickling would call print(): a crafted file must be refused."""
    import torch

    class Payload:
        def __reduce__(self):
            return (print, ("this ran code",))

    torch.save({"model": {"w": torch.zeros(1)}, "payload": Payload()}, folder / "model.pt")


def bigger_model(run: Path) -> None:
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("hidden_size: 32", "hidden_size: 48", 1))


DISK_FULL_IN_SAVE = """
import errno, nmt.train.checkpoint as checkpoint
def save(obj, f):
    raise OSError(errno.ENOSPC, "No space left on device")
checkpoint.torch.save = save
"""

# -- checking what handled rows did ----------------------------------------------------------


@functools.cache
def translations(run: Path, lines: tuple[str, ...]) -> list[str]:
    """What nmt.translator gives for lines in-process: the reference for nmt-translate."""
    from nmt.translator import Translator

    return Translator.load(run, device="cpu").translate_text(list(lines))


def translated_as(*lines: str) -> Callable[[Outcome], None]:
    def check(out: Outcome) -> None:
        assert out.stdout.split("\n")[:-1] == translations(out.run, lines), out.stdout

    return check


def output_lines(n: int) -> Callable[[Outcome], None]:
    def check(out: Outcome) -> None:
        assert out.stdout.count("\n") == n and len(out.stdout.splitlines()) == n, out.stdout

    return check


def bleu_is(score: str) -> Callable[[Outcome], None]:
    return lambda out: _assert(f"BLEU = {score} " in out.stdout, out.stdout)


def logged(phrase: str) -> Callable[[Outcome], None]:
    return lambda out: _assert(phrase in out.stderr, out.stderr)


def trained(out: Outcome) -> None:
    assert (out.folder / "new-run" / "checkpoints" / "last.pt").is_file(), out.stderr


def nothing_half_written(out: Outcome) -> None:
    leftovers = list((out.folder / "new-run").rglob(".*.tmp"))
    assert not leftovers and not (out.folder / "new-run/checkpoints/last.pt").exists(), leftovers


def _assert(ok: bool, context: str) -> None:
    assert ok, context[-2000:]


# -- the table -------------------------------------------------------------------------------

T, X, E = "train", "translate", "evaluate"
RUN = "run={run}"
BAD_UTF8 = TOY_XX.encode() + b"caf\xe9 au lait\n"
IN = "input={tmp}/in.txt"
HR = ("hyp={tmp}/hyp.txt", "ref={tmp}/ref.txt")
HYP_REF = write({"hyp.txt": "a b c d\n", "ref.txt": "a b c d\n"})

ROWS = [
    # nmt-train: every row fails before the first update, or trains 2 updates
    Row("train-missing-file", T, "data.train names no file", ("{toy}", "data.train={tmp}/nothing"), corpus(), "no xx side found"),
    Row("train-directory", T, "a directory instead of a corpus file", ("{toy}", "data.train='{tmp}/data/{lang}'"), mkdirs("data/xx", "data/yy"), "is a directory, not a file"),
    Row("train-empty-files", T, "empty corpus files", ("{toy}",), corpus("", ""), "no non-empty sentences"),
    Row("train-only-whitespace", T, "corpus lines of only whitespace", ("{toy}",), corpus(" \n\t\n", " \n\u3000\n"), "no non-empty sentences"),
    Row("train-unequal-lines", T, "source and target line counts differ", ("{toy}",), corpus(yy="ahpla\n"), "must have the same number of lines"),
    Row("train-invalid-utf8", T, "invalid UTF-8 (Latin-1 é) in the source", ("{toy}",), corpus(BAD_UTF8, TOY_YY + "x\n"), "line 13: invalid UTF-8 (byte 0xe9"),
    Row("train-utf16", T, "a UTF-16 corpus file", ("{toy}",), corpus(TOY_XX.encode("utf-16")), "iconv -f utf-16"),
    Row("train-corrupt-gz", T, "train.xx.gz that is not gzip", ("{toy}",), write({"data/train.xx.gz": b"plain text\n", "data/train.yy": TOY_YY}), "not a valid gzip file"),
    Row("train-tsv-no-tab", T, "a TSV line without a tab", ("{toy}", "data.train={tmp}/c.tsv", "data.valid={tmp}/c.tsv"), write({"c.tsv": "alpha\tahpla\nbravo ovarb\n"}), "line 2: expected 2 tab-separated fields"),
    Row("train-crlf-bom", T, "CRLF line endings and a UTF-8 BOM", ("{toy}",), corpus("\ufeff" + TOY_XX.replace("\n", "\r\n"), TOY_YY.replace("\n", "\r\n")), handled="trains; CR and BOM are dropped, no pair lost", check=lambda o: (trained(o), logged("kept 12 of 12 pairs")(o)), slow=True),
    Row("train-1mb-line", T, "a 1 MB single line in the corpus", ("{toy}",), corpus(TOY_XX + MEGA + "\n", TOY_YY + "ahpla\n"), handled="trains; the pair is dropped and counted in the log", check=lambda o: (trained(o), logged("dropped 1 longer than 100 tokens")(o)), slow=True),
    Row("train-wrong-type", T, "wrong config type (model.hidden_size=big)", ("model.hidden_size=big",), error="model.hidden_size=big: Value 'big' of type 'str' could not be converted to Integer"),
    Row("train-unknown-key", T, "unknown config key (misspelt)", ("model.hiden_size=64",), error="Key 'hiden_size' not in 'ModelConfig'"),
    Row("train-unknown-group", T, "unknown config group option", ("model=transformer",), error="available options in 'model': demo, gru, lstm, rnn"),
    Row("train-bad-choice", T, "a value outside its choices", ("model.cell=transformer",), error="model.cell='transformer' is not one of: gru, lstm, rnn"),
    Row("train-negative-lr", T, "negative learning rate", ("optim.lr=-0.1",), error="optim.lr=-0.1 must be greater than 0"),
    Row("train-word-dropout-1", T, "a rate of 1 (every word dropped)", ("model.word_dropout=1",), error="model.word_dropout=1.0 is a rate: it must be below 1"),
    Row("train-override-syntax", T, "an override without =", ("vocab_size",), error="an override is KEY=VALUE"),
    Row("train-missing-key", T, "data=files without data.train", ("data=files", "data.src=xx", "data.tgt=yy"), error="data.train is required: pass data.train=VALUE"),
    Row("train-bad-interpolation", T, "an interpolation to no key", ("{toy}", "data.train=${oops}"), corpus(), "data.train: Interpolation key 'oops' not found"),
    Row("train-vocab-too-small", T, "data.vocab_size below what the corpus needs", ("{toy}", "data.vocab_size=20"), corpus(), "data.vocab_size=20 is too small"),
    Row("train-existing-run", T, "hydra.run.dir is an existing run (no resume)", ("{toy}", "hydra.run.dir={tmp}/run"), lambda f, r: (corpus()(f, r), run_copy()(f, r)), "already holds a trained model"),
    Row("train-run-dir-is-file", T, "hydra.run.dir is a file", ("{toy}", "hydra.run.dir={tmp}/afile"), write({"afile": "mine\n"}), "afile: is a file, but a directory is needed"),
    Row("train-resume-no-dir", T, "resume=true without hydra.run.dir", ("{toy}", "resume=true"), corpus(), "resume=true needs hydra.run.dir", new_run_dir=False),
    Row("train-resume-truncated", T, "resume from a truncated last.pt", ("{toy}", "resume=true", "hydra.run.dir={tmp}/run"), run_copy(lambda r: truncated(r / "checkpoints/last.pt")), "cannot be loaded as an nmt checkpoint"),
    Row("train-no-gpu", T, "device=cuda:99 (no such GPU)", ("{toy}", "device=cuda:99"), corpus(), "device=cuda:99: this machine has"),
    Row("train-disk-full", T, "disk full while saving a checkpoint (simulated ENOSPC)", ("{toy}",), corpus(), "new-run/checkpoints/last.pt: No space left on device", check=nothing_half_written, prelude=DISK_FULL_IN_SAVE, slow=True),
    # nmt-translate
    Row("translate-missing-run", X, "missing run directory", ("run={tmp}/nothing",), error="nothing: no such run directory"),
    Row("translate-run-is-file", X, "run= names a file", ("run={tmp}/afile",), write({"afile": "x"}), "afile is a file; run= takes the directory"),
    Row("translate-not-a-run", X, "run= names a directory that is no run", ("run={tmp}",), error="no config.yaml; is this a run directory"),
    Row("translate-no-run-arg", X, "run= not given", (), error="run is required: pass run=VALUE"),
    Row("translate-missing-input", X, "input file missing", (RUN, IN), error="in.txt: no such file"),
    Row("translate-input-directory", X, "a directory instead of the input file", (RUN, "input={tmp}"), error="is a directory, not a file"),
    Row("translate-empty-input", X, "an empty input file", (RUN, IN), write({"in.txt": ""}), handled="no output lines, exit 0", check=output_lines(0)),
    Row("translate-invalid-utf8", X, "invalid UTF-8 on standard input", (RUN,), error="standard input, line 2: invalid UTF-8 (byte 0xe9", stdin=b"alpha\ncaf\xe9\n"),
    Row("translate-nul-byte", X, "a NUL byte in the input file", (RUN, IN), write({"in.txt": b"alpha\x00 bravo\n"}), "in.txt, line 1: contains a NUL byte (column 6)"),
    Row("translate-crlf-bom", X, "CRLF line endings and a UTF-8 BOM", (RUN,), stdin="\ufeffalpha bravo\r\ncharlie\r\n".encode(), handled="translated exactly as with LF endings", check=translated_as("alpha bravo", "charlie")),
    Row("translate-whitespace", X, "lines of only whitespace", (RUN,), stdin=" \n\t\n\u3000\n".encode(), handled="one empty output line each", check=lambda o: _assert(o.stdout == "\n\n\n", o.stdout)),
    Row("translate-scripts-emoji", X, "unknown scripts, emoji, ZWJ, RTL marks", (RUN,), stdin="日本語 😀\nالعربية \u200f\n👩\u200d👩\u200d👧 🇩🇪\n".encode(), handled="one output line per input line", check=output_lines(3)),
    Row("translate-u2028", X, "U+2028 / U+0085 inside a line", (RUN,), stdin="alpha\u2028bravo\x85charlie\ndelta\n".encode(), handled="2 lines in, 2 lines out (only \\n ends a line)", check=output_lines(2)),
    Row("translate-1mb-line", X, "a 1 MB single line", (RUN, IN, "threads=1"), write({"in.txt": MEGA + "\n"}), handled="one output line (about 10 s)", check=output_lines(1), slow=True),
    Row("translate-beam-0", X, "beam size 0", (RUN, "decode=beam", "decode.beam_size=0"), error="decode.beam_size=0 must be greater than 0"),
    Row("translate-negative-alpha", X, "negative length-penalty α", (RUN, "decode.alpha=-0.6"), error="decode.alpha=-0.6 must be 0 or more"),
    Row("translate-nbest-over-beam", X, "decode.nbest above decode.beam_size", (RUN, "decode=beam", "decode.beam_size=2", "decode.nbest=3"), error="decode.nbest=3 is more than decode.beam_size=2"),
    Row("translate-wrong-type", X, "wrong config type (beam size five)", (RUN, "decode.beam_size=five"), error="could not be converted to Integer"),
    Row("translate-unknown-key", X, "unknown config key", (RUN, "decode.beem_size=4"), error="Key 'beem_size' not in 'DecodeConfig'"),
    Row("translate-truncated-ckpt", X, "a truncated checkpoint", (RUN, "checkpoint={tmp}/model.pt"), checkpoint_copy(lambda b: b[: len(b) // 2]), "model.pt: cannot be loaded as an nmt checkpoint"),
    Row("translate-pickle-ckpt", X, "a crafted pickle as checkpoint", (RUN, "checkpoint={tmp}/model.pt"), pickled_checkpoint, "refused: it holds pickled objects"),
    Row("translate-no-best", X, "run without checkpoints/best.pt", ("run={tmp}/run",), run_copy(lambda r: (r / "checkpoints/best.pt").unlink()), "best.pt: not found; training may not have reached"),
    Row("translate-no-spm", X, "run without spm.model", ("run={tmp}/run",), run_copy(lambda r: (r / "spm.model").unlink()), "no spm.model or spm.src.model/spm.tgt.model"),
    Row("translate-broken-config", X, "run with a corrupt config.yaml", ("run={tmp}/run",), run_copy(lambda r: (r / "config.yaml").write_text("model: [32\n")), "config.yaml: not a config written by nmt-train"),
    Row("translate-mismatched-ckpt", X, "config.yaml and checkpoint disagree", ("run={tmp}/run",), run_copy(bigger_model), "the checkpoint does not fit the model the config describes (shapes differ"),
    Row("translate-output-disk-full", X, "disk full on write (output=/dev/full)", (RUN, "output=/dev/full"), error="/dev/full: No space left on device", stdin=b"alpha\n"),
    Row("translate-stdout-disk-full", X, "disk full on stdout (> /dev/full)", (RUN,), error="standard output: No space left on device", stdin=b"alpha\n", stdout="/dev/full"),
    Row("translate-output-is-input", X, "output= is the input file", (RUN, IN, "output={tmp}/in.txt"), write({"in.txt": "alpha\n"}), "is the input file"),
    Row("translate-output-directory", X, "output= is a directory", (RUN, "output={tmp}"), error="output={tmp} is a directory", stdin=b"alpha\n"),
    Row("translate-no-gpu", X, "device=cuda:99 (no such GPU)", (RUN, "device=cuda:99"), error="device=cuda:99: this machine has", stdin=b"alpha\n"),
    # nmt-evaluate
    Row("evaluate-missing-hyp", E, "hypothesis file missing", HR, write({"ref.txt": "a\n"}), "hyp.txt: no such file"),
    Row("evaluate-no-ref-arg", E, "ref= not given", ("hyp={tmp}/hyp.txt",), HYP_REF, "ref is required: pass ref=VALUE"),
    Row("evaluate-unequal-lines", E, "hypothesis and reference line counts differ", HR, write({"hyp.txt": "a\nb\n", "ref.txt": "a\n"}), "has 2 lines but"),
    Row("evaluate-empty-hyp", E, "an empty hypothesis file", HR, write({"hyp.txt": "", "ref.txt": "a\n"}), "the hypothesis file is empty"),
    Row("evaluate-invalid-utf8", E, "invalid UTF-8 in the reference", HR, write({"hyp.txt": "a\n", "ref.txt": b"\xff\n"}), "ref.txt, line 1: invalid UTF-8 (byte 0xff"),
    Row("evaluate-nul-byte", E, "a NUL byte in the hypothesis", HR, write({"hyp.txt": "a\0\n", "ref.txt": "a\n"}), "hyp.txt, line 1: contains a NUL byte"),
    Row("evaluate-ref-directory", E, "a directory instead of the reference", ("hyp={tmp}/hyp.txt", "ref={tmp}"), HYP_REF, "is a directory, not a file"),
    Row("evaluate-crlf", E, "CRLF reference, LF hypothesis", HR, write({"hyp.txt": "a b c d\n", "ref.txt": "a b c d\r\n"}), handled="scored as if LF: BLEU 100", check=bleu_is("100.00")),
    Row("evaluate-whitespace-hyp", E, "a hypothesis of only whitespace", HR, write({"hyp.txt": " \n", "ref.txt": "a b c d\n"}), handled="scored as an empty translation: BLEU 0", check=bleu_is("0.00")),
    Row("evaluate-1mb-line", E, "a 1 MB single line (BLEU, chrF)", (*HR, "metrics=[bleu,chrf]"), write({"hyp.txt": MEGA + "\n", "ref.txt": MEGA + "\n"}), handled="scored: BLEU 100", check=bleu_is("100.00"), slow=True),
    Row("evaluate-ter-long-line", E, "a 5,000-word line with TER (quadratic)", HR, write({"hyp.txt": "a b " * 2500 + "\n", "ref.txt": "a c " * 2500 + "\n"}), "TER is quadratic in sentence length"),
    Row("evaluate-unknown-metric", E, "an unknown metric", (*HR, "metrics=[bleu,meteor]"), HYP_REF, "not supported; choose one or more of bleu, chrf, ter"),
    Row("evaluate-bad-tokenizer", E, "an unknown BLEU tokeniser", (*HR, "tokenize=moses"), HYP_REF, "tokenize='moses' is not a sacrebleu tokeniser"),
    Row("evaluate-json-disk-full", E, "disk full on write (json=/dev/full)", (*HR, "json=/dev/full"), HYP_REF, "/dev/full: No space left on device"),
    Row("evaluate-report-dir-file", E, "report_dir= is a file", (*HR, "report_dir={tmp}/hyp.txt"), HYP_REF, "report_dir={tmp}/hyp.txt is a file"),
    Row("evaluate-missing-run", E, "missing run directory", (*HR, "run={tmp}/nothing"), HYP_REF, "nothing: no such run directory"),
    Row("evaluate-wrong-type", E, "wrong config type (confidence=maybe)", (*HR, "confidence=maybe"), HYP_REF, "confidence=maybe: Value 'maybe' is not a valid bool"),
    Row("evaluate-bad-seed", E, "resampling seed 0", (*HR, "confidence=true", "seed=0"), HYP_REF, "seed=0 must be greater than 0"),
]  # fmt: skip


# -- running a row ---------------------------------------------------------------------------


def snapshot(*folders: Path) -> dict[str, str]:
    """sha256 of every file under the folders."""
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest()
        for folder in folders
        if folder.is_dir()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def command_line(row: Row, folder: Path, run: Path) -> list[str]:
    args = [a.replace("{tmp}", str(folder)).replace("{run}", str(run)) for a in row.args]
    if row.command == "train":
        given = {a.split("=", 1)[0] for a in args}
        data = folder / "data"
        toy = [
            o
            for o in [*files_overrides(data, str(data / "train"), str(data / "valid")), *FAST]
            if o.split("=", 1)[0] not in given
        ]
        toy += ["train.max_updates=2", "train.valid_every=2", "train.max_epochs=0"]
        args = [x for a in args for x in (toy if a == "{toy}" else [a])]
        if row.new_run_dir and "hydra.run.dir" not in given:
            args.append(f"hydra.run.dir={folder}/new-run")
    if not row.prelude:
        return cli_command(row.command, *args)
    code = f"{row.prelude}\nimport sys\nfrom nmt.cli.{row.command} import main\nmain()\n"
    return [sys.executable, "-c", code, *args]


def run_row(row: Row, folder: Path, run: Path) -> Outcome:
    """Make the row's files in folder, run its command there, and see what changed."""
    folder.mkdir(parents=True)
    if row.setup:
        row.setup(folder, run)
    before = snapshot(folder, run)
    start = time.perf_counter()
    with open(row.stdout or "/dev/null", "wb") as sink:
        proc = subprocess.run(
            command_line(row, folder, run),
            input=row.stdin if row.stdin is not None else b"",
            stdout=sink if row.stdout else subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=cli_env(),
            cwd=folder,
            timeout=300,
        )
    after = snapshot(folder, run)
    changed = sorted(p for p, digest in before.items() if after.get(p) != digest)
    text = (proc.stdout or b"").decode("utf-8", "backslashreplace")
    return Outcome(
        proc.returncode,
        text,
        proc.stderr.decode("utf-8", "backslashreplace"),
        folder,
        run,
        changed,
        time.perf_counter() - start,
    )


def run_rows(rows: list[Row], base: Path, run: Path, workers: int = 2) -> dict[str, Outcome]:
    """Run rows two at a time (each is a process of its own) in base/<row id>."""
    with ThreadPoolExecutor(workers) as pool:
        done = pool.map(lambda row: run_row(row, base / "rows" / row.id, run), rows)
        return {row.id: out for row, out in zip(rows, done, strict=True)}


def check_row(row: Row, out: Outcome) -> None:
    assert "Traceback" not in out.stderr, out.stderr
    assert not out.changed, f"files the user had were changed: {out.changed}"
    if row.error is not None:
        lines = out.stderr.strip().splitlines()
        errors = [line for line in lines if line.startswith("error: ")]
        assert out.returncode == 2, (out.returncode, out.stderr)
        assert len(errors) == 1 and lines[-1] == errors[0], out.stderr
        if row.command != "train":  # nmt-train logs to stderr as well
            assert len(lines) == 1, out.stderr
        phrase = row.error.replace("{tmp}", str(out.folder))
        assert phrase in errors[0], errors[0]
    else:
        assert out.returncode == 0, out.stderr
    if row.check:
        row.check(out)


# -- the tests -------------------------------------------------------------------------------


def selected_rows(request) -> list[Row]:
    """The rows whose tests this session runs (all, unless -k or a node id picks some)."""
    ids = set()
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if item.module is request.module and callspec and "row" in callspec.params:
            ids.add(callspec.params["row"].id)
    return [row for row in ROWS if row.id in ids]


@pytest.fixture(scope="module")
def outcomes(request, trained_run, tmp_path_factory) -> dict[str, Outcome]:
    return run_rows(selected_rows(request), tmp_path_factory.mktemp("bad-inputs"), trained_run)


def test_the_table_covers_every_command_with_35_rows_or_more():
    assert len(ROWS) >= 35 and len({r.id for r in ROWS}) == len(ROWS)
    assert {r.command for r in ROWS} == {"train", "translate", "evaluate"}
    assert all(r.id.startswith(r.command) and (r.error is None) != (not r.handled) for r in ROWS)


@pytest.mark.parametrize(
    "row", [pytest.param(r, id=r.id, marks=[pytest.mark.slow] if r.slow else []) for r in ROWS]
)
def test_bad_input_gets_one_error_line_or_is_handled(row, outcomes):
    check_row(row, outcomes[row.id])


@pytest.mark.parametrize("switch", ["NMT_VERBOSE", "HYDRA_FULL_ERROR"])
@pytest.mark.parametrize(
    "command, args",
    [("evaluate", ["hyp=nothing.txt", "ref=nothing.txt"]), ("train", ["model.hiden_size=64"])],
    ids=["error-in-the-command", "error-in-the-config"],
)
def test_verbose_switch_gives_the_traceback(switch, command, args, tmp_path):
    proc = subprocess.run(
        cli_command(command, *args, f"hydra.run.dir={tmp_path}/run"),
        capture_output=True,
        env=cli_env(**{switch: "1"}),
        cwd=tmp_path,
        timeout=300,
    )
    stderr = proc.stderr.decode()
    assert proc.returncode != 0 and "Traceback (most recent call last)" in stderr, stderr


# -- the closing note's table ----------------------------------------------------------------


def markdown(rows: list[Row], outcomes: dict[str, Outcome], run: Path) -> str:
    """The table as markdown: input | command | what the user gets."""

    def cell(text: str, folder: Path) -> str:
        text = text.replace(str(folder), "DIR").replace(str(run), "RUN")
        return text.replace("|", "\\|")

    lines = ["| # | input | command | what the user gets |", "|---|---|---|---|"]
    for n, row in enumerate(rows, 1):
        out = outcomes[row.id]
        if row.error is None:
            got = f"exit {out.returncode}; {row.handled}"
        else:
            errors = [x for x in out.stderr.splitlines() if x.startswith("error: ")]
            got = f"exit {out.returncode}: `{errors[-1] if errors else out.stderr.strip()}`"
        lines.append(f"| {n} | {row.input} | nmt-{row.command} | {cell(got, out.folder)} |")
    return "\n".join(lines)


def main() -> int:
    """Run every row (a toy model is trained first) and print the markdown table."""
    import tempfile

    from tests.reliability.conftest import train_reliability_run

    with tempfile.TemporaryDirectory() as tmp:
        run = train_reliability_run(Path(tmp) / "toy")
        start = time.perf_counter()
        outcomes = run_rows(ROWS, Path(tmp), run)
        print(markdown(ROWS, outcomes, run))
        failed = 0
        for row in ROWS:
            try:
                check_row(row, outcomes[row.id])
            except AssertionError as err:
                failed += 1
                print(f"FAILED {row.id}: {str(err)[:300]}", file=sys.stderr)
        slowest = sorted(outcomes.items(), key=lambda kv: -kv[1].seconds)[:5]
        print(
            f"\n{len(ROWS)} rows, {failed} failed, {time.perf_counter() - start:.0f} s; slowest: "
            + ", ".join(f"{k} {o.seconds:.1f} s" for k, o in slowest),
            file=sys.stderr,
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
