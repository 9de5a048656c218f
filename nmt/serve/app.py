"""The translation server's ASGI app: one loaded Translator behind typed JSON endpoints.

    POST /translate  sentences + decode options → translations (n-best, attention on request)
    POST /score      source/target pairs → log P(y|x) and the search objective
    POST /analyze    source + reference → class, both scores, fall-off step, both attentions
    GET  /health     answers while the model works (it runs on its own thread)
    GET  /info       model, languages, run config, decode defaults, limits, sha256 of files
    GET  /           the page (page.html): translate, see the attention, analyse an error

/translate requests that arrive together share model calls (batching.py; greedy ones join
the rows decoding between steps: streams.py); /score and
/analyze run on the same model thread, one at a time (torch is not re-entrant for us).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from concurrent.futures import ThreadPoolExecutor
from importlib.resources import files

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from omegaconf import DictConfig, OmegaConf

import nmt
from nmt.analysis.classify import ACTIONS, LABELS
from nmt.config import DecodeConfig, ServeConfig
from nmt.errors import ConfigError, DataError
from nmt.serve import limits
from nmt.serve.batching import MicroBatcher
from nmt.serve.schemas import (
    AnalyzeRequest,
    AnalyzeResponse,
    ErrorOut,
    Health,
    ScoreRequest,
    ScoreResponse,
    TranslateRequest,
    TranslateResponse,
)
from nmt.serve.streams import TranslationStream
from nmt.translator import Translator

ERRORS = {413: {"model": ErrorOut}, 422: {"model": ErrorOut}}


def _frozen(decode: DecodeConfig | DictConfig) -> tuple:
    """A decode config as a hashable key: requests with equal keys share a model call."""
    if isinstance(decode, DictConfig):
        values = OmegaConf.to_container(decode, resolve=True)
    else:
        values = dataclasses.asdict(decode)
    return tuple(sorted(values.items()))


def page_html() -> str:
    """The page at /: one self-contained HTML file (no CDN, no build step)."""
    return files("nmt.serve").joinpath("page.html").read_text(encoding="utf-8")


def server_info(translator: Translator, decode: DecodeConfig | DictConfig, serve: ServeConfig):
    """What /info shows; the checkpoint's sha256 is computed once, here."""
    manifest = translator.manifest()
    config = OmegaConf.to_container(translator.config, resolve=True)
    checkpoint = manifest.get("checkpoint", {})
    return {
        "name": "nmt",
        "version": nmt.__version__,
        "run": manifest.get("path"),
        "checkpoint": {
            "path": next(iter(checkpoint), None),
            "sha256": next(iter(checkpoint.values()), None),
        },
        # an ensemble (run=[A,B]): every model's checkpoint, the first also as "checkpoint"
        "ensemble": [{"path": p, "sha256": h} for p, h in checkpoint.items()]
        if len(checkpoint) > 1
        else None,
        "languages": {"source": config["data"].get("src"), "target": config["data"].get("tgt")},
        "model": config.get("model"),
        "attention": config.get("attention"),
        "device": str(translator.device),
        "decode": dict(_frozen(decode)),
        "limits": (
            OmegaConf.to_container(serve)
            if isinstance(serve, DictConfig)
            else dataclasses.asdict(serve)
        ),
        "spm_models": manifest.get("spm_models", {}),
        "config": config,
    }


def create_app(
    translator: Translator,
    serve: ServeConfig | DictConfig | None = None,
    decode: DecodeConfig | DictConfig | None = None,
) -> FastAPI:
    """The app serving translator; serve: the limits and batching (ServeConfig); decode: the
    defaults request options override (None: the run's own decode config)."""
    serve = serve if serve is not None else ServeConfig()
    decode = translator.decode_config(decode)  # refused here, at start-up, if invalid
    if decode.beam_size > serve.max_beam:
        raise ConfigError(
            f"decode.beam_size={decode.beam_size} is over serve.max_beam={serve.max_beam}: "
            "every request would be refused; lower the one or raise the other"
        )
    info = server_info(translator, decode, serve)
    page = page_html()

    def translate_batch(key: tuple, sentences: list[str]) -> list[dict]:
        settings, attention = key
        options = DecodeConfig(**dict(settings))
        done = translator.translate(sentences, attention=attention, decode=options)
        return [t.to_json() for t in done]

    def translation_stream(key: tuple) -> TranslationStream | None:
        """Greedy requests decode continuously (streams.py); beam requests in batches."""
        settings, attention = key
        options = DecodeConfig(**dict(settings))
        if options.strategy != "greedy" or not serve.continuous:
            return None
        return TranslationStream(translator, options, attention)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nmt-model")
        batcher = MicroBatcher(
            translate_batch,
            executor,
            serve.max_wait_ms / 1000,
            serve.max_batch,
            stream=translation_stream,
        )
        batcher.start()
        app.state.batcher, app.state.executor = batcher, executor
        try:
            yield
        finally:
            await batcher.stop()
            executor.shutdown(wait=True)

    app = FastAPI(
        title="nmt",
        version=nmt.__version__,
        summary="Recurrent NMT with attention: translate, score, and see why a translation erred",
        lifespan=lifespan,
    )
    app.add_middleware(limits.BodyLimit, max_bytes=serve.max_body_bytes)
    limits.install(app)

    def options_for(request) -> DecodeConfig | DictConfig:
        """The request's decode options over the defaults, checked against the limits and
        validated (a ConfigError naming the option: 422) before the request joins a batch."""
        settings = translator.decode_config(decode, **request.given())
        limits.check_beam(serve, settings.beam_size)
        return settings

    async def on_model_thread(fn, *args):
        return await asyncio.get_running_loop().run_in_executor(app.state.executor, fn, *args)

    @app.post("/translate", response_model=TranslateResponse, responses=ERRORS)
    async def translate(request: TranslateRequest) -> dict:
        """Translate sentences (blank ones stay blank); concurrent requests are batched."""
        limits.check_sentences(serve, "sentences", request.sentences)
        key = (_frozen(options_for(request)), request.attention)
        return {"translations": await app.state.batcher.submit(key, request.sentences)}

    @app.post("/score", response_model=ScoreResponse, responses=ERRORS)
    async def score(request: ScoreRequest) -> dict:
        """log P(target | source) and the objective for each aligned pair (forced decoding)."""
        limits.check_sentences(serve, "sources", request.sources)
        limits.check_sentences(serve, "targets", request.targets)
        if len(request.sources) != len(request.targets):
            raise DataError(
                f"targets: {len(request.targets)} targets for {len(request.sources)} sources; "
                "give one target per source"
            )
        settings = translator.decode_config(decode, **request.given())

        def score_pairs() -> list[dict]:
            found = translator.score(request.sources, request.targets, decode=settings)
            return [pair.to_json() for pair in found]

        return {"scores": await on_model_thread(score_pairs)}

    @app.post("/analyze", response_model=AnalyzeResponse, responses=ERRORS)
    async def analyze(request: AnalyzeRequest) -> dict:
        """Why the beam's translation of source missed reference: nmt-analyze's record."""
        limits.check_chars(serve, "source", request.source)
        limits.check_chars(serve, "reference", request.reference)
        settings = options_for(request)
        found = await on_model_thread(
            lambda: translator.analyze(request.source, request.reference, decode=settings)
        )
        out = found.to_json()
        kind = out["record"]["class"]
        return {**out, "label": LABELS[kind], "action": ACTIONS[kind]}

    @app.get("/health", response_model=Health)
    async def health() -> dict:
        """Always answers at once, even while the model translates."""
        batcher = app.state.batcher
        stats = batcher.stats
        return {
            "status": "ok",
            "queued": batcher.queued,
            "running": batcher.running,
            "batches": stats.batches,
            "largest_batch": stats.largest,
        }

    @app.get("/info")
    async def get_info() -> dict:
        """The model, its languages and config, decode defaults, limits and file hashes."""
        return info

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> str:
        return page

    return app
