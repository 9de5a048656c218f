"""Figures: training curves from metrics.csv, attention heatmaps from a model's search."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.image import imread

from nmt.errors import RunDirError
from nmt.evaluate.attention import attention_maps
from nmt.evaluate.plots import DPI, attention_heatmap, training_curves
from nmt.evaluate.report import training_summary
from nmt.rundir import read_metrics_csv
from nmt.translator import Translator
from tests.evaluate.conftest import write_metrics_csv

PNG = b"\x89PNG\r\n\x1a\n"


def test_training_curves_png_from_a_written_metrics_csv(tmp_path):
    rows = read_metrics_csv(write_metrics_csv(tmp_path / "metrics.csv"))
    assert rows[0] == {
        "split": "train",
        "update": 10,
        "epoch": 1,
        "loss": pytest.approx(4.2287),
        "ppl": pytest.approx(68.625),
        "bleu": None,
        "lr": 0.001,
        "tokens_per_s": 5000.0,
        "elapsed_s": 1.0,
    }
    path = training_curves(rows, tmp_path / "curves.png", "a run")
    assert path.read_bytes()[:8] == PNG
    height, width = imread(path).shape[:2]
    assert (width, height) == (12 * DPI, round(3.6 * DPI))
    assert training_summary(rows)["best_valid"]["update"] == 200


def test_training_curves_before_the_first_validation(tmp_path):
    csv = tmp_path / "metrics.csv"
    csv.write_text(
        "update,epoch,split,loss,ppl,bleu,lr,tokens_per_s,elapsed_s\n"
        "50,1,train,3.0,20.1,,0.001,100,1\n"
    )
    rows = read_metrics_csv(csv)
    assert training_curves(rows, tmp_path / "c.png").read_bytes()[:8] == PNG
    assert training_summary(rows)["best_valid"] is None


def test_unreadable_metrics_csv_names_file_and_line(tmp_path):
    csv = tmp_path / "metrics.csv"
    csv.write_text("update,split,loss,ppl,bleu\n10,train,3.0,oops,\n")
    with pytest.raises(RunDirError, match=r"metrics.csv, line 2: ppl='oops' is not a number"):
        read_metrics_csv(csv)
    csv.write_text("step,value\n1,2\n")
    with pytest.raises(RunDirError, match="not a metrics.csv written by nmt-train"):
        read_metrics_csv(csv)
    with pytest.raises(RunDirError, match="not found"):
        read_metrics_csv(tmp_path / "none.csv")


def test_attention_heatmap_takes_tensors_and_checks_the_token_counts(tmp_path):
    weights = torch.softmax(torch.randn(3, 5), dim=-1)  # (T, S)
    src, tgt = ["▁das", "▁Haus", "▁ist", "▁klein", "</s>"], ["▁the", "▁house", "</s>"]
    path = attention_heatmap(weights, src, tgt, tmp_path / "a.png", "line 1")
    assert path.read_bytes()[:8] == PNG
    with pytest.raises(ValueError, match=r"shape \(3, 5\) does not match 2 output and 5 source"):
        attention_heatmap(weights.numpy(), src, tgt[:2], tmp_path / "b.png")


def test_attention_maps_follow_the_models_greedy_translation(fake_run, test_set):
    translator = Translator.load(fake_run, device="cpu")
    sentences = test_set["src"].read_text().splitlines()[:3]
    maps = attention_maps(
        translator.model, translator.vocabs, sentences, [1, 2, 3], translator.config.decode
    )
    assert [m.line for m in maps] == [1, 2, 3]
    assert [m.output for m in maps] == translator.translate_text(sentences)
    for amap, sentence in zip(maps, sentences, strict=True):
        assert amap.weights.shape == (len(amap.tgt_tokens), len(amap.src_tokens))
        assert np.allclose(amap.weights.sum(axis=1), 1.0, atol=1e-5)
        assert amap.src_tokens[-1] == "</s>" and amap.source == sentence
        assert translator.vocabs.src.sp.decode_pieces(amap.src_tokens[:-1]) == sentence
