"""nmt-analyze's sentences.jsonl is streamed a buffer at a time: an analysis interrupted
after some buffers and resumed writes the same records, summary and attention maps as one
that ran through in memory."""

from __future__ import annotations

import numpy as np
import pytest

import nmt.analysis.analyze as analyze_module
from nmt.analysis.analyze import analyze
from nmt.analysis.report import write
from nmt.analysis.sentences import read_records, records_text
from nmt.data.stream import done, progress_path
from nmt.errors import ConfigError
from tests.analysis.conftest import SEARCH_ERROR, BigramModel, id_vocabs
from tests.helpers import compose_config

SRC = ["4 5", "4", "5 6", "6", "4 6", "5"]
REF = ["5", "4", "4 6", "6", "6", "5 6"]


def config(tmp_path, *extra: str):
    src, ref = tmp_path / "test.src", tmp_path / "test.ref"
    if not src.exists():  # written once: a resume checks they did not change
        src.write_text("".join(x + "\n" for x in SRC))
        ref.write_text("".join(x + "\n" for x in REF))
    overrides = [
        "run=RUN",
        f"data.test_src={src}",
        f"data.test_ref={ref}",
        "decode.beam_size=2",
        "decode.buffer_size=2",
        "analysis.sweep_beams=[1,2]",
        "analysis.sweep_alphas=[0]",
        "analysis.exact_sentences=0",  # exact search records wall times: not reproducible
        "analysis.attention_lines=[3,6]",  # in the second and third buffer
        "progress=false",
        *extra,
    ]
    return compose_config("analyze", overrides)


def untimed(summary: dict) -> dict:
    """A summary without what differs between any two runs: wall times, the manifest."""
    out = {k: v for k, v in summary.items() if k not in ("timings", "manifest")}
    out["sweep"] = [{k: v for k, v in row.items() if k != "seconds"} for row in out["sweep"]]
    return out


def test_an_interrupted_analysis_resumes_to_the_records_of_one_run_through(tmp_path, monkeypatch):
    model, vocabs = BigramModel(SEARCH_ERROR), id_vocabs()
    whole = analyze(model, vocabs, config(tmp_path))
    path = tmp_path / "out" / "sentences.jsonl"
    real, calls = analyze_module.compare, []

    def crashing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(analyze_module, "compare", crashing)
    with pytest.raises(KeyboardInterrupt):
        analyze(model, vocabs, config(tmp_path), sentences=path)
    assert not path.exists() and len(read_records(f"{path}.part")) == 4  # two buffers
    with pytest.raises(ConfigError, match="holds 4 lines of an interrupted run"):
        analyze(model, vocabs, config(tmp_path), sentences=path)
    resumed = analyze(model, vocabs, config(tmp_path, "resume=true"), sentences=path)
    assert len(calls) == 4  # the third buffer only: the first two were kept
    assert path.read_text() == records_text(whole.records)
    assert resumed.records == whole.records
    assert untimed(resumed.summary.to_json()) == untimed(whole.summary.to_json())
    for a, b in zip(resumed.attention, whole.attention, strict=True):
        assert (a.line, a.tgt_tokens) == (b.line, b.tgt_tokens)
        np.testing.assert_array_equal(a.weights, b.weights)
    written = write(resumed, path.parent)
    assert written["jsonl"].read_text() == records_text(whole.records)
    assert progress_path(path).exists()  # kept until the report is written, then:
    done(path)
    assert sorted(p.name for p in path.parent.iterdir() if "sentences" in p.name) == [
        "sentences.jsonl"
    ]
