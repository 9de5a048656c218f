"""The page at / in a real browser: headless Chromium loads it from a loopback server, its
script translates and analyses a sentence given in the URL, and the DOM shows the results."""

from __future__ import annotations

import re
import shutil
import subprocess
from urllib.parse import urlencode

import pytest

from nmt.config import DecodeConfig, ServeConfig
from nmt.serve.app import create_app
from tests.serve.conftest import serving

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BEAM = DecodeConfig(strategy="beam", beam_size=3, alpha=1.0)


def chromium(url: str, profile, *action: str) -> subprocess.CompletedProcess:
    """Headless Chromium on url with a fresh profile, nothing fetched but url."""
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=15000",  # let the page's fetches finish before the dump
    ]
    return subprocess.run(
        [CHROMIUM, *flags, *action, url], capture_output=True, text=True, timeout=90
    )


@pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install chromium)"
)
def test_page_shows_translation_nbest_attention_and_analysis(translator, serve_run, tmp_path):
    src, ref = serve_run[1][0]
    ref = ref.split()[0] + " " + ref  # a reference the model will not produce exactly
    with serving(create_app(translator, ServeConfig(), BEAM)) as url:
        query = urlencode({"src": src, "ref": ref, "beam": 3, "nbest": 3})
        proc = chromium(f"{url}/?{query}", tmp_path / "profile", "--dump-dom")
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    assert 'data-state="done"' in dom, dom[-3000:]
    best = translator.translate([src], decode=BEAM, nbest=3)[0]
    found = re.search(r'<div id="translation" class="translation">(.*?)</div>', dom)
    assert found and found.group(1) == best.text
    assert dom.count("<tr>") >= 1 + 3  # the n-best table: a header and 3 hypotheses
    kind = translator.analyze(src, ref, decode=BEAM).record.class_
    assert f'class="badge {kind}"' in dom
    heatmaps = re.findall(r'<div id="(hyp|ref)-heat" class="heat"><svg', dom)
    assert sorted(heatmaps) == ["hyp", "ref"]
    forced = translator.attention(src, ref)
    cells = len(best.tokens) * len(best.src_tokens) + len(forced.tgt_tokens) * len(
        forced.src_tokens
    )
    assert dom.count('class="cell"') == cells  # one rect per weight of both heatmaps
    assert 'id="error" class="error" hidden' in dom  # no error shown
