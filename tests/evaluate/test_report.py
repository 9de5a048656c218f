"""The report: its contents, the three files, the manifest and the errors it refuses with."""

from __future__ import annotations

import hashlib
import json
import re
from html.parser import HTMLParser

import numpy as np
import pytest
import sacrebleu

from nmt.errors import ConfigError, DataError, RunDirError
from nmt.evaluate.plots import AttentionMap
from nmt.evaluate.report import bucket_ranges, build_report, evaluation_text, write_report
from nmt.evaluate.sections import EVALUATION_SECTIONS
from tests.evaluate.test_records import REPORT

FAST = ("n_bootstrap=200", "n_ar=200")
TOP_LEVEL = set(REPORT)  # the keys of report.json, pinned in order in test_records.py


def lines(path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


class Sections(HTMLParser):
    """Collects section ids, image sources and the text of an HTML page; checks nesting."""

    VOID = {"meta", "img", "br", "link", "hr", "input"}

    def __init__(self) -> None:
        super().__init__()
        self.ids, self.images, self.text, self.stack = [], [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.ids.append(attrs.get("id"))
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1:]}>"
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def parse(html: str) -> Sections:
    parser = Sections()
    parser.feed(html)
    parser.close()
    assert parser.stack == [], parser.stack
    return parser


def test_one_system_report_matches_sacrebleu_and_keeps_the_old_json_keys(evaluate_config, test_set):
    report = build_report(evaluate_config())
    data = report.data.to_json()  # what report.json holds
    assert set(data) == TOP_LEVEL
    hyps, refs = lines(test_set["base"]), lines(test_set["ref"])
    assert data["hyp"] == str(test_set["base"]) and data["sentences"] == len(refs)
    assert data["scores"]["bleu"]["score"] == pytest.approx(
        sacrebleu.corpus_bleu(hyps, [refs]).score, abs=1e-4
    )
    assert data["significance"] == {} and data["training"] is None
    segments = data["systems"][0]["segments"]
    assert [s["line"] for s in segments] == list(range(1, len(refs) + 1))
    assert segments[4]["hyp"] == hyps[4] and segments[4]["ref"] == refs[4]


def test_plain_summary_is_the_score_lines_with_signatures(evaluate_config):
    text = evaluation_text(build_report(evaluate_config()).data)
    out = text.splitlines()
    assert len(out) == 6 and [line.split(" ")[0] for line in out[::2]] == ["BLEU", "chrF2", "TER"]
    assert all(line.startswith("  signature: nrefs:1|") for line in out[1::2])


def test_worst_sentences_come_first(evaluate_config):
    system = build_report(evaluate_config("metrics=[chrf,bleu]")).data.systems[0]
    by_line = {s.line: s.scores["chrf"] for s in system.segments}
    ordered = [by_line[line] for line in system.worst]
    assert ordered == sorted(ordered) and ordered[0] < ordered[-1]


def test_worst_by_ter_puts_the_highest_error_rate_first(evaluate_config):
    system = build_report(evaluate_config("metrics=[ter]")).data.systems[0]
    by_line = {s.line: s.scores["ter"] for s in system.segments}
    ordered = [by_line[line] for line in system.worst]
    assert ordered == sorted(ordered, reverse=True)


def test_length_buckets_partition_the_sentences_with_subset_bleu(evaluate_config, test_set):
    data = build_report(evaluate_config(f"src={test_set['src']}", "length_buckets=[2,3]")).data
    buckets = data.systems[0].buckets
    assert [b.label for b in buckets] == ["≤ 2", "3–3", "4+"]
    assert sum(b.sentences for b in buckets) == data.sentences
    assert data.settings.bucket_by == "source words"
    src, hyps, refs = (lines(test_set[k]) for k in ("src", "base", "ref"))
    idx = [i for i, s in enumerate(src) if len(s.split()) >= 4]
    expected = sacrebleu.corpus_bleu([hyps[i] for i in idx], [[refs[i] for i in idx]])
    assert buckets[2].scores["bleu"] == pytest.approx(expected.score, abs=1e-4)
    assert buckets[2].length_ratio == pytest.approx(expected.ratio, abs=1e-4)


def test_bucket_ranges_cover_every_length():
    assert bucket_ranges([10, 20]) == [(0, 10, "≤ 10"), (11, 20, "11–20"), (21, None, "21+")]


def test_two_systems_get_both_tests_and_per_system_cis(evaluate_config, test_set):
    cfg = evaluate_config(
        f"systems=[{test_set['better']}]", "confidence=true", "significance=both", *FAST
    )
    data = build_report(cfg).data
    assert set(data.significance) == {"bs", "ar"}
    for system in data.systems:
        for entry in system.scores.values():
            assert entry.ci.low <= entry.score <= entry.ci.high
    better = data.significance["ar"].systems[1]
    assert better.system == str(test_set["better"]) and better.cells["bleu"].significant
    text = evaluation_text(data)
    assert "system 1 (baseline)" in text and "paired approximate randomisation" in text


def test_significance_none_runs_no_test(evaluate_config, test_set):
    cfg = evaluate_config(f"systems=[{test_set['better']}]", "significance=none")
    assert build_report(cfg).data.significance == {}


def test_report_files_html_parses_with_every_section(evaluate_config, test_set, fake_run, tmp_path):
    cfg = evaluate_config(
        f"systems=[{test_set['better']}]",
        f"src={test_set['src']}",
        "confidence=true",
        f"run={fake_run}",
        "worst=5",
        *FAST,
    )
    amap = AttentionMap(
        line=2,
        weights=np.full((3, 4), 0.25),
        src_tokens=["▁a", "b", "c", "</s>"],
        tgt_tokens=["▁x", "<y>", "</s>"],
        source="a bc",
        output="x <y>",
        note="greedy, checkpoint best",
    )
    report = build_report(cfg, [amap])
    written = write_report(report, tmp_path / "report")
    assert {p.name for p in (tmp_path / "report").iterdir()} == {
        "report.json",
        "report.md",
        "report.html",
        "training_curves.png",
        "attention-line2.png",
    }
    page = parse(written["html"].read_text(encoding="utf-8"))
    assert page.ids == list(EVALUATION_SECTIONS)
    # self-contained: every image is embedded, nothing is fetched
    assert len(page.images) == 2 and all(
        s.startswith("data:image/png;base64,") for s in page.images
    )
    text = "".join(page.text)
    assert "<y>" in text  # tokens and sentences are escaped, not parsed as tags
    assert report.data.manifest.signatures["bleu"] in text
    saved = json.loads(written["json"].read_text(encoding="utf-8"))
    assert saved["training"]["curves"] == "training_curves.png"
    assert saved["attention"][0]["image"] == "attention-line2.png"
    markdown = written["md"].read_text(encoding="utf-8")
    for title in EVALUATION_SECTIONS.values():
        assert f"\n## {title}\n" in markdown
    assert "![training curves](training_curves.png)" in markdown
    worst = saved["systems"][0]["worst"][:5]
    rows = re.findall(r"^\| (\d+) \|", markdown.split("## Worst sentences")[1], re.M)
    assert [int(r) for r in rows[:5]] == worst


def test_manifest_records_hashes_versions_commit_and_run(evaluate_config, test_set, fake_run):
    cfg = evaluate_config(f"run={fake_run}")
    manifest = build_report(cfg, checkpoint=fake_run / "checkpoints" / "best.pt").data.manifest
    ref_hash = hashlib.sha256(test_set["ref"].read_bytes()).hexdigest()
    assert manifest.data[str(test_set["ref"])] == ref_hash
    assert set(manifest.data) == {str(test_set["base"]), str(test_set["ref"])}
    assert {"nmt", "torch", "sacrebleu", "sentencepiece"} <= set(manifest.versions)
    commit = manifest.git.commit
    assert commit == "unknown" or re.fullmatch(r"[0-9a-f]{40}", commit)
    assert manifest.config["hyp"] == str(test_set["base"])
    run = manifest.run
    spm_hash = hashlib.sha256((fake_run / "spm.model").read_bytes()).hexdigest()
    assert run["spm_models"] == {str(fake_run / "spm.model"): spm_hash}
    assert list(run["checkpoint"]) == [str(fake_run / "checkpoints" / "best.pt")]
    assert run["decode"]["strategy"] == "greedy" and run["config"]["data"]["src"] == "xx"
    assert manifest.signatures["bleu"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")


def test_training_summary_finds_the_best_validation(evaluate_config, fake_run):
    training = build_report(evaluate_config(f"run={fake_run}")).data.training
    assert training.updates == 300 and training.train_rows == 30
    assert [v["update"] for v in training.validations] == [100, 200, 300]
    assert training.best_valid["bleu"] == 31.0


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("significance=maybe", "significance='maybe' is not one of: none, bs, ar, both"),
        ("length_buckets=[20,10]", "length_buckets=[20, 10] must be increasing"),
        ("attention_lines=[1]", "attention_lines=[1] needs run= and src= and report_dir="),
        ("worst=-1", "worst=-1 must be 0 or more"),
        ("n_ar=0", "n_ar=0 must be greater than 0"),
    ],
)
def test_impossible_options_are_config_errors(evaluate_config, override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_report(evaluate_config(override))


def test_misaligned_source_or_system_and_a_missing_run_are_clear_errors(evaluate_config, tmp_path):
    short, empty = tmp_path / "short.txt", tmp_path / "empty.txt"
    short.write_text("one line\n")
    empty.write_text("")
    with pytest.raises(DataError, match="empty.txt: the hypothesis file is empty"):
        build_report(evaluate_config(f"systems=[{empty}]"))
    with pytest.raises(DataError, match="short.txt has 1 lines but the reference has 150"):
        build_report(evaluate_config(f"src={short}"))
    with pytest.raises(DataError, match="short.txt has 1 lines but .* has 150"):
        build_report(evaluate_config(f"systems=[{short}]"))
    with pytest.raises(RunDirError, match="no such run directory"):
        build_report(evaluate_config(f"run={tmp_path}/nothing"))
    odd_run = tmp_path / "odd_run"
    odd_run.mkdir()
    (odd_run / "config.yaml").write_text("- a list\n")
    (odd_run / "metrics.csv").write_text("update,split,loss,ppl,bleu\n")
    with pytest.raises(RunDirError, match="config.yaml: not a config written by nmt-train"):
        build_report(evaluate_config(f"run={odd_run}"))
    with pytest.raises(ConfigError, match="nothing to evaluate"):
        build_report(evaluate_config("hyp=''"))
