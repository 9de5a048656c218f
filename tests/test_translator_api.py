"""The Python API (`from nmt import Translator`) against the CLIs on one toy run trained by
nmt-train, whose training data is deleted before anything is loaded."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import asdict

import pytest
import torch
from omegaconf import OmegaConf

from nmt import EOS_ID, Translator
from nmt.errors import ConfigError
from nmt.search.ensemble import Ensemble
from nmt.translator import format_nbest
from tests.helpers import compose_config, run_cli, toy_pairs, train_toy_run, write_parallel

# unseen pairs of the toy language (the run trains on toy_pairs(12)), so some translations miss
TEST = toy_pairs(6, seed=5)
BEAM = {"beam_size": 4, "alpha": 1.0}
BEAM_CLI = ["decode=beam", "decode.beam_size=4", "decode.alpha=1.0"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A toy run (about 20 s) whose training corpus is gone: loading must not need it."""
    tmp = tmp_path_factory.mktemp("api")
    run = train_toy_run(tmp, "train.max_updates=150", "train.valid_every=150")
    shutil.rmtree(tmp / "data")
    return run


@pytest.fixture(scope="module")
def translator(run):
    return Translator.load(run, device="cpu")


@pytest.fixture(scope="module")
def analysed(run, tmp_path_factory):
    """sentences.jsonl and summary.json of nmt-analyze on TEST (beam 4, alpha 1)."""
    tmp = tmp_path_factory.mktemp("api-analyze")
    test = write_parallel(tmp / "test", "test", TEST)
    out = tmp / "out"
    proc = run_cli(
        "analyze",
        f"run={run}",
        f"data.test_src={test}.xx",
        f"data.test_ref={test}.yy",
        *BEAM_CLI,
        "analysis.sweep_beams=[]",
        "analysis.exact_sentences=0",
        "progress=false",
        f"out={out}",
    )
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in (out / "sentences.jsonl").read_text().splitlines()]
    return records, json.loads((out / "summary.json").read_text())


def cli_translate(run, lines: list[str], *overrides: str) -> str:
    proc = run_cli("translate", f"run={run}", *overrides, stdin="".join(x + "\n" for x in lines))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_import_nmt_leaves_torch_unimported_until_translator_is_asked_for():
    code = (
        "import sys, nmt\n"
        "assert 'torch' not in sys.modules, 'import nmt imported torch'\n"
        "assert nmt.Translator.__module__ == 'nmt.translator'\n"
        "assert 'torch' in sys.modules\n"
        "assert 'matplotlib' not in sys.modules, 'loading a model pays for the plots'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_loading_and_translating_need_no_training_data(run, translator):
    assert not (run.parent / "data").exists()
    assert not any(
        (run.parent / "data" / f"train.{lang}").exists() for lang in ("xx", "yy")
    )  # what config.yaml's data.train names
    assert all(t.text for t in translator.translate([s for s, _ in TEST]))


@pytest.mark.parametrize(
    "options, overrides",
    [({}, []), (BEAM, BEAM_CLI)],
    ids=["greedy", "beam"],
)
def test_translate_gives_what_nmt_translate_prints(run, translator, options, overrides):
    lines = [s for s, _ in TEST] + [""]
    cli_decode = OmegaConf.to_object(compose_config("translate", ["run=x", *overrides]).decode)
    assert translator.decode_config(**options) == cli_decode  # the same search, then:
    got = translator.translate(lines, **options)
    assert [t.text for t in got] == cli_translate(run, lines, *overrides).split("\n")[:-1]
    assert translator.translate_text(lines, **options) == [t.text for t in got]


def test_nbest_lists_are_what_nmt_translate_prints(run, translator):
    lines = [TEST[0][0], "", TEST[1][0]]
    got = translator.translate(lines, **BEAM, nbest=3)
    assert cli_translate(run, lines, *BEAM_CLI, "decode.nbest=3") == format_nbest(got)
    assert [len(t.nbest) for t in got] == [3, 0, 3]
    first = got[0].nbest[0]
    assert (first.text, first.score, first.ids) == (got[0].text, got[0].score, got[0].ids)
    assert [h.score for h in got[0].nbest] == sorted((h.score for h in got[0].nbest), reverse=True)


def test_translation_carries_tokens_and_attention_of_matching_shapes(translator):
    (t,) = translator.translate(TEST[0][0], attention=True, **BEAM)
    assert t.ids[-1] == EOS_ID and t.tokens[-1] == "</s>" and len(t.tokens) == len(t.ids)
    assert t.text == translator.vocabs.tgt.decode([t.ids])[0]
    assert t.src_tokens == translator.vocabs.src.pieces(
        [*translator.vocabs.src.encode([TEST[0][0]])[0], EOS_ID]
    )
    assert len(t.attention) == len(t.ids)  # (T_out, S)
    assert all(len(row) == len(t.src_tokens) for row in t.attention)
    assert all(sum(row) == pytest.approx(1.0, abs=1e-5) for row in t.attention)
    assert translator.translate(TEST[0][0])[0].attention is None  # only when asked for
    json.dumps(t.to_json())  # plain values, ready for a server


def test_a_blank_line_is_an_empty_translation(translator):
    blank, full = translator.translate(["  ", TEST[0][0]], nbest=1)
    assert (blank.text, blank.ids, blank.score, blank.nbest) == ("", [], 0.0, [])
    assert full.text


def test_score_gives_the_reference_numbers_nmt_analyze_reports(translator, analysed):
    records, summary = analysed
    assert asdict(translator.decode_config(**BEAM)) == summary["decode"]
    scores = translator.score([s for s, _ in TEST], [r for _, r in TEST], **BEAM)
    for s, rec in zip(scores, records, strict=True):
        assert s.logprob == pytest.approx(rec["ref_logprob"], abs=1e-5)
        assert s.score == pytest.approx(rec["ref_score"], abs=1e-5)
        assert s.tokens == rec["ref_tokens"] and len(s.token_logprobs) == len(s.ids)
        assert sum(s.token_logprobs) == pytest.approx(s.logprob, abs=1e-5)
    # the objective follows the options: alpha 0 is the raw log P
    raw = translator.score([TEST[0][0]], [TEST[0][1]], alpha=0.0)[0]
    assert raw.score == pytest.approx(raw.logprob, abs=1e-6)


def test_analyze_gives_nmt_analyzes_record_of_the_sentence(translator, analysed):
    records, _ = analysed
    assert {r["class"] for r in records} != {"match"}  # something to explain
    for (src, ref), rec in zip(TEST, records, strict=True):
        got = translator.analyze(src, ref, **BEAM)
        r = got.record
        assert (r.class_, r.hyp, r.fell_off_step, r.fell_off_reason, r.ref_ranks) == (
            rec["class"],
            rec["hyp"],
            rec["fell_off_step"],
            rec["fell_off_reason"],
            rec["ref_ranks"],
        )
        assert r.hyp_score == pytest.approx(rec["hyp_score"], abs=1e-5)
        assert r.ref_score == pytest.approx(rec["ref_score"], abs=1e-5)
        assert len(got.hyp_attention.weights) == r.hyp_len
        assert got.to_json()["record"]["class"] == rec["class"]


def test_attention_of_a_forced_target_has_rows_summing_to_one(translator):
    src, tgt = TEST[1]
    a = translator.attention(src, tgt)
    assert a.tgt_tokens[-1] == "</s>" and a.src_tokens[-1] == "</s>"
    assert len(a.weights) == len(a.tgt_tokens)  # (T, S)
    assert all(len(row) == len(a.src_tokens) for row in a.weights)
    assert all(sum(row) == pytest.approx(1.0, abs=1e-5) for row in a.weights)
    forced = translator.analyze(src, tgt, **BEAM).ref_attention
    flat = [w for row in a.weights for w in row]
    assert [w for row in forced.weights for w in row] == pytest.approx(flat, abs=1e-6)


def test_a_wide_beam_alone_means_beam_search(translator):
    assert translator.decode_config(beam_size=4).strategy == "beam"
    assert translator.decode_config(beam_size=1).strategy == "greedy"


@pytest.mark.parametrize(
    "options, named",
    [
        ({"beam_width": 4}, ["beam_width", "beam_size", "alpha"]),  # unknown: lists the valid
        ({"beam_size": "4"}, ["beam_size", "int"]),
        ({"alpha": True}, ["alpha", "float"]),
        ({"alpha": -1.0}, ["decode.alpha=-1.0"]),
        ({"length_penalty": "log"}, ["decode.length_penalty", "gnmt"]),
        ({"beam_size": 2, "nbest": 3}, ["decode.nbest=3", "decode.beam_size=2"]),
    ],
)
def test_bad_decode_options_raise_config_error_naming_them(translator, options, named):
    for call in (
        lambda: translator.translate(["alpha"], **options),
        lambda: translator.score(["alpha"], ["ahpla"], **options),
        lambda: translator.analyze("alpha", "ahpla", **options),
    ):
        with pytest.raises(ConfigError) as err:
            call()
        assert all(n in str(err.value) for n in named), str(err.value)


def test_score_refuses_unaligned_sources_and_targets(translator):
    with pytest.raises(ConfigError, match="2 sources but 1 targets"):
        translator.score(["alpha", "bravo"], ["ahpla"])


@pytest.fixture(scope="module")
def other_checkpoint(run, tmp_path_factory):
    """A second model over the run's vocabularies: best.pt with its weights perturbed."""
    from nmt.train.checkpoint import load_checkpoint, save_checkpoint

    state = load_checkpoint(run / "checkpoints" / "best.pt")
    torch.manual_seed(0)
    state["model"] = {
        k: v + 0.3 * torch.randn_like(v) if v.is_floating_point() else v
        for k, v in state["model"].items()
    }
    path = tmp_path_factory.mktemp("ensemble") / "other.pt"
    save_checkpoint(state, path)
    return path


def test_an_ensemble_translates_through_the_cli_as_through_the_api(run, other_checkpoint):
    ensemble = Translator.load([run, run], ["best", other_checkpoint], device="cpu")
    assert isinstance(ensemble.model, Ensemble)
    assert [str(c) for _, c in ensemble.members][1] == str(other_checkpoint)
    assert len(ensemble.manifest()["ensemble"]) == 2
    lines = [s for s, _ in TEST]
    got = ensemble.translate_text(lines, **BEAM)
    cli = cli_translate(f"[{run},{run}]", lines, f"checkpoint=[best,{other_checkpoint}]", *BEAM_CLI)
    assert got == cli.split("\n")[:-1]
    # one scorer: the output's score is what the beam reported for it
    best = ensemble.translate(lines, **BEAM)
    scored = ensemble.score(lines, [t.text for t in best], **BEAM)
    same = [(t, s) for t, s in zip(best, scored, strict=True) if t.tokens == s.tokens]
    assert same  # detokenised text may re-segment: compare where the pieces are the same
    for t, s in same:
        assert s.logprob == pytest.approx(t.logprob, abs=1e-4)
    record = ensemble.analyze(*TEST[0], **BEAM).record
    assert record.ref_logprob <= 0 and record.hyp_logprob <= 0


def test_an_ensemble_of_runs_with_other_vocabularies_is_refused_naming_the_model(run, tmp_path):
    from nmt.data.tokenizer import Tokenizer

    other = tmp_path / "other-run"
    shutil.copytree(run, other, ignore=shutil.ignore_patterns("data"))
    Tokenizer.train([f"quite other words {i}" for i in range(50)], other / "spm.model", 300)
    with pytest.raises(ConfigError, match=r"source SentencePiece model .*other-run/spm.model"):
        Translator.load([run, other], device="cpu")
    with pytest.raises(ConfigError, match="2 checkpoints for 3 runs"):
        Translator.load([run, run, run], ["best", "last"], device="cpu")


def test_bf16_decoding_warns_once_where_the_cpu_multiplies_bf16_no_faster(run, monkeypatch, caplog):
    """A CPU with AVX512-BF16 but no AMX decoded bf16 at 0.63-0.72x fp32's speed
    (bench/README.md): decode.precision=bf16 is kept, with a warning naming fp32."""
    from nmt.config import DecodeConfig
    from nmt.kernels import precision, probe

    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    monkeypatch.setattr(probe, "bf16_products", lambda *a: {"fp32": 1.0, "bf16": 1.7})
    fresh = Translator.load(run, device="cpu")
    with caplog.at_level("WARNING", logger="nmt.kernels"):
        for _ in range(2):
            model = fresh.decoding_model(DecodeConfig(precision="bf16"))
    assert next(model.parameters()).dtype == torch.bfloat16
    said = [r.getMessage() for r in caplog.records if "no faster than fp32" in r.getMessage()]
    assert len(said) == 1 and "decode.precision=fp32 is the faster setting" in said[0]
