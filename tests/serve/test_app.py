"""The server on a loopback port: answers equal the Python API's, refusals name the field or
the limit, concurrent requests share model calls, /health answers during a slow call."""

from __future__ import annotations

import asyncio
import json
import threading

import httpx
import pytest

from nmt.config import DecodeConfig, ServeConfig
from nmt.rundir import sha256
from nmt.serve.app import create_app
from nmt.translator import Translator
from tests.serve.conftest import Gate, serving

BEAM = DecodeConfig(strategy="beam", beam_size=3, alpha=1.0)
LIMITS = ServeConfig(max_body_bytes=4000, max_sentences=8, max_chars=80, max_beam=4)


@pytest.fixture(scope="module")
def url(translator):
    with serving(create_app(translator, LIMITS, BEAM)) as base:
        yield base


def post(url: str, path: str, body, **kwargs) -> httpx.Response:
    return httpx.post(url + path, json=body, timeout=30, **kwargs)


def test_translate_equals_the_python_api(url, translator, serve_run):
    sentences = [serve_run[1][0][0], "", serve_run[1][1][0]]
    got = post(url, "/translate", {"sentences": sentences, "nbest": 2, "attention": True})
    assert got.status_code == 200, got.text
    expected = translator.translate(sentences, decode=BEAM, nbest=2, attention=True)
    for out, want in zip(got.json()["translations"], expected, strict=True):
        assert out["text"] == want.text and out["tokens"] == want.tokens
        assert out["score"] == pytest.approx(want.score, abs=1e-5)
        assert [h["text"] for h in out["nbest"]] == [h.text for h in want.nbest]
        flat = [w for row in out["attention"] or [] for w in row]
        assert flat == pytest.approx([w for row in want.attention or [] for w in row], abs=1e-5)
    assert got.json()["translations"][1]["text"] == ""


def test_score_and_analyze_equal_the_python_api(url, translator, serve_run):
    src, ref = serve_run[1][2]
    got = post(url, "/score", {"sources": [src], "targets": [ref], "alpha": 0.5}).json()
    want = translator.score([src], [ref], decode=BEAM, alpha=0.5)[0]
    assert got["scores"][0]["logprob"] == pytest.approx(want.logprob, abs=1e-5)
    assert got["scores"][0]["score"] == pytest.approx(want.score, abs=1e-5)
    found = post(url, "/analyze", {"source": src, "reference": ref})
    assert found.status_code == 200, found.text
    record = translator.analyze(src, ref, decode=BEAM).record
    body = found.json()
    assert body["record"]["class"] == record.class_ and body["label"]
    assert body["record"]["fell_off_step"] == record.fell_off_step
    assert body["record"]["ref_logprob"] == pytest.approx(record.ref_logprob, abs=1e-5)
    rows = body["ref_attention"]["weights"]
    assert len(rows) == len(body["ref_attention"]["tgt_tokens"])
    assert all(sum(row) == pytest.approx(1, abs=1e-4) for row in rows)


def test_info_names_languages_limits_and_the_checkpoint_hash(url, translator):
    info = httpx.get(url + "/info").json()
    assert info["languages"] == {"source": "xx", "target": "yy"}
    assert info["checkpoint"]["sha256"] == sha256(translator.checkpoint)
    assert info["limits"]["max_beam"] == 4 and info["decode"]["beam_size"] == 3


def test_openapi_schema_refuses_unknown_fields(url):
    schemas = httpx.get(url + "/openapi.json").json()["components"]["schemas"]
    assert schemas["TranslateRequest"]["additionalProperties"] is False
    assert "sentences" in schemas["TranslateRequest"]["required"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"sentences": ["alpha"], "colour": "red"}, "colour"),  # unknown field
        ({"sentences": "alpha"}, "sentences"),  # wrong type
        ({"sentences": [3]}, "sentences.0"),
        ({"sentences": ["alpha"], "beam_size": "4"}, "beam_size"),
        ({}, "sentences"),
        ({"sentences": ["alpha"], "nbest": 4}, "nbest"),  # more than the beam of 3
    ],
)
def test_bad_request_is_422_naming_the_field(url, body, field):
    got = post(url, "/translate", body)
    assert got.status_code == 422, got.text
    assert got.json()["error"] == "invalid_request" and got.json()["field"] == field


def test_malformed_json_is_422_naming_the_body(url):
    got = httpx.post(
        url + "/translate",
        content=b'{"sentences": ["a"',
        headers={"content-type": "application/json"},
    )
    assert got.status_code == 422
    assert got.json()["field"] == "body" and "malformed JSON" in got.json()["message"]


@pytest.mark.parametrize(
    ("path", "body", "status", "limit"),
    [
        ("/translate", {"sentences": ["alpha"] * 9}, 413, "serve.max_sentences"),
        ("/translate", {"sentences": ["alpha " * 20]}, 413, "serve.max_chars"),
        ("/analyze", {"source": "alpha " * 20, "reference": "x"}, 413, "serve.max_chars"),
        ("/score", {"sources": ["a"] * 9, "targets": ["b"] * 9}, 413, "serve.max_sentences"),
        ("/translate", {"sentences": ["alpha"], "beam_size": 5}, 422, "serve.max_beam"),
        ("/analyze", {"source": "alpha", "reference": "x", "beam_size": 5}, 422, "serve.max_beam"),
    ],
)
def test_request_over_a_limit_names_the_limit(url, path, body, status, limit):
    got = post(url, path, body)
    assert got.status_code == status, got.text
    assert got.json()["error"] == "limit_exceeded" and got.json()["limit"] == limit
    assert limit in got.json()["message"]


def test_oversize_body_is_413_declared_or_streamed(url):
    body = json.dumps({"sentences": ["alpha"] * 1000}).encode()  # 9 kB > max_body_bytes
    got = httpx.post(url + "/translate", content=body, headers={"content-type": "application/json"})
    assert got.status_code == 413 and got.json()["limit"] == "serve.max_body_bytes"
    chunks = (body[i : i + 1000] for i in range(0, len(body), 1000))  # chunked: no length
    got = httpx.post(
        url + "/translate", content=chunks, headers={"content-type": "application/json"}
    )
    assert got.status_code == 413 and got.json()["limit"] == "serve.max_body_bytes"


def test_score_with_unequal_lists_names_targets(url):
    got = post(url, "/score", {"sources": ["alpha", "bravo"], "targets": ["x"]})
    assert got.status_code == 422 and got.json()["field"] == "targets"


async def _concurrently(url: str, bodies: list[dict]) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        return await asyncio.gather(*(client.post("/translate", json=b) for b in bodies))


def test_concurrent_requests_share_model_calls_and_get_their_own_answers(translator, serve_run):
    gate = Gate()
    sentences = [src for src, _ in serve_run[1]]
    bodies = [{"sentences": sentences[i : i + 2]} for i in range(0, 12, 2)]  # 6 requests
    bodies += [{"sentences": [s], "beam_size": 2} for s in sentences[:4]]  # other options
    with serving(create_app(gate.wrap(translator), ServeConfig(max_wait_ms=5), BEAM)) as url:

        async def run() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                first = asyncio.ensure_future(client.post("/translate", json=bodies[0]))
                while not gate.entered.is_set():  # the first call holds the model thread
                    await asyncio.sleep(0.01)
                rest = [
                    asyncio.ensure_future(client.post("/translate", json=b)) for b in bodies[1:]
                ]
                while (await client.get("/health")).json()["queued"] < 13:
                    await asyncio.sleep(0.01)
                gate.open.set()
                return await asyncio.gather(first, *rest)

        answers = asyncio.run(asyncio.wait_for(run(), 60))
    assert all(a.status_code == 200 for a in answers)
    # one call for the first request, then one per set of options: 10 sentences, 4 sentences
    assert sorted(gate.calls) == [(2, 3), (4, 2), (10, 3)]
    for body, answer in zip(bodies, answers, strict=True):
        want = translator.translate(
            body["sentences"], decode=BEAM, beam_size=body.get("beam_size", 3)
        )
        assert [t["text"] for t in answer.json()["translations"]] == [t.text for t in want]


def test_health_answers_while_a_request_translates(translator):
    gate = Gate()
    with serving(create_app(gate.wrap(translator), ServeConfig(), BEAM)) as url:

        async def run() -> None:
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                slow = asyncio.ensure_future(
                    client.post("/translate", json={"sentences": ["alpha"]})
                )
                while not gate.entered.is_set():
                    await asyncio.sleep(0.01)
                health = await asyncio.wait_for(client.get("/health"), 5)
                assert health.json()["running"] == 1 and not slow.done()
                gate.open.set()
                assert (await slow).status_code == 200

        asyncio.run(asyncio.wait_for(run(), 60))


def test_an_ensemble_serves_as_the_python_api_decodes_it(serve_run):
    run = serve_run[0]
    ensemble = Translator.load([run, run], ["best", "last"], device="cpu")
    src = serve_run[1][0][0]
    with serving(create_app(ensemble, LIMITS, BEAM)) as base:
        info = httpx.get(base + "/info").json()
        got = post(base, "/translate", {"sentences": [src]}).json()["translations"][0]
    assert [m["sha256"] for m in info["ensemble"]] == [sha256(c) for _, c in ensemble.members]
    assert got["text"] == ensemble.translate([src], decode=BEAM)[0].text


def test_greedy_requests_decoded_together_get_the_python_apis_answers(translator, serve_run):
    greedy = DecodeConfig(strategy="greedy", beam_size=1, alpha=1.0, length_penalty="norm")
    sentences = [src for src, _ in serve_run[1]] + [""]
    bodies = [{"sentences": sentences[i : i + 3], "attention": True} for i in range(0, 13, 3)]
    # three rows at most: a request joins the stream as rows of the ones before it end
    app = create_app(translator, ServeConfig(max_wait_ms=0, max_batch=3), greedy)
    with serving(app) as url:
        hold = threading.Event()
        app.state.executor.submit(hold.wait, 30)  # the model thread is busy: requests queue

        async def run() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                sent = [asyncio.ensure_future(client.post("/translate", json=b)) for b in bodies]
                while (await client.get("/health")).json()["queued"] < len(sentences) - 3:
                    await asyncio.sleep(0.01)  # all but the first request's: it opened
                hold.set()
                return await asyncio.gather(*sent)

        answers = asyncio.run(asyncio.wait_for(run(), 60))
        health = httpx.get(url + "/health").json()
    # one stream, never emptied until the last request: each joined it between steps
    assert health["batches"] == 1 and health["largest_batch"] == 3
    for body, answer in zip(bodies, answers, strict=True):
        assert answer.status_code == 200, answer.text
        want = translator.translate(body["sentences"], decode=greedy, attention=True)
        for out, expected in zip(answer.json()["translations"], want, strict=True):
            assert out["text"] == expected.text and out["ids"] == expected.ids
            assert out["src_tokens"] == expected.src_tokens
            assert out["score"] == pytest.approx(expected.score, abs=1e-5)
            assert out["logprob"] == pytest.approx(expected.logprob, abs=1e-5)
            got_w = [w for row in out["attention"] or [] for w in row]
            assert got_w == pytest.approx(
                [w for r in expected.attention or [] for w in r], abs=1e-5
            )
