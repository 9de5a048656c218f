"""Refusals with reasons: the request limits (serve.* in conf/serve.yaml) and the JSON body of
every 4xx answer, which names the field or the config key at fault."""

from __future__ import annotations

import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from nmt.config import ServeConfig
from nmt.errors import NmtError


class LimitExceeded(Exception):
    """A request over one of the server's limits; status 413 for sizes, 422 for values."""

    def __init__(self, limit: str, field: str, got: float, max: float, status: int, message: str):
        super().__init__(message)
        self.limit, self.field, self.got, self.max, self.status = limit, field, got, max, status


def _error(status: int, message: str, **extra) -> JSONResponse:
    kind = "limit_exceeded" if "limit" in extra else "invalid_request"
    return JSONResponse({"error": kind, "message": message, **extra}, status_code=status)


def check_sentences(limits: ServeConfig, field: str, sentences: list[str]) -> None:
    """Refuse more than serve.max_sentences sentences, or one over serve.max_chars characters."""
    if len(sentences) > limits.max_sentences:
        raise LimitExceeded(
            "serve.max_sentences",
            field,
            len(sentences),
            limits.max_sentences,
            413,
            f"{len(sentences)} {field} in one request; the server takes at most "
            f"serve.max_sentences={limits.max_sentences}: split the request",
        )
    for i, sentence in enumerate(sentences):
        check_chars(limits, f"{field}.{i}", sentence)


def check_chars(limits: ServeConfig, field: str, sentence: str) -> None:
    if len(sentence) > limits.max_chars:
        raise LimitExceeded(
            "serve.max_chars",
            field,
            len(sentence),
            limits.max_chars,
            413,
            f"{field} has {len(sentence)} characters; the server takes at most "
            f"serve.max_chars={limits.max_chars} a sentence: split it",
        )


def check_beam(limits: ServeConfig, beam_size: int) -> None:
    if beam_size > limits.max_beam:
        raise LimitExceeded(
            "serve.max_beam",
            "beam_size",
            beam_size,
            limits.max_beam,
            422,
            f"beam_size={beam_size} is over this server's cap serve.max_beam={limits.max_beam}",
        )


def _field(loc: tuple) -> str:
    """A pydantic error location as a dotted field name, without the leading 'body'."""
    parts = [str(p) for p in loc]
    return ".".join(parts[1:] if parts[:1] == ["body"] and len(parts) > 1 else parts)


def validation_response(err: RequestValidationError) -> JSONResponse:
    """422 naming each field at fault (malformed JSON: field 'body', with the position)."""
    errors = []
    for e in err.errors():
        if e.get("type") == "json_invalid":
            position = e["loc"][-1] if len(e["loc"]) > 1 else "?"
            reason = (e.get("ctx") or {}).get("error", "invalid JSON")
            errors.append({"field": "body", "message": f"malformed JSON at {position}: {reason}"})
        else:
            errors.append({"field": _field(e["loc"]), "message": e["msg"], "type": e["type"]})
    first = errors[0] if errors else {"field": "body", "message": "invalid request"}
    message = "; ".join(f"{x['field']}: {x['message']}" for x in errors) or first["message"]
    return _error(422, message, field=first["field"], errors=errors)


# the key a ConfigError message starts with, e.g. "decode.nbest=3 is more than ..."
_KEY = re.compile(r"^(?:decode\.)?([a-z_]+)[=:]")


def install(app: FastAPI) -> None:
    """Answer validation errors, limits and NmtErrors (a bad option) as JSON 4xx."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        return validation_response(err)

    @app.exception_handler(LimitExceeded)
    async def _limit(request: Request, err: LimitExceeded) -> JSONResponse:
        return _error(
            err.status, str(err), field=err.field, limit=err.limit, max=err.max, got=err.got
        )

    @app.exception_handler(NmtError)
    async def _nmt(request: Request, err: NmtError) -> JSONResponse:
        found = _KEY.match(str(err))
        return _error(422, str(err), field=found.group(1) if found else None)


class BodyLimit:
    """ASGI middleware: a request body over max_bytes is answered 413 before it reaches the app
    (by its Content-Length when given, else by counting what arrives)."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send, int(declared))
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client went away
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                await self._refuse(scope, receive, send, size)
                return
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope, receive, send, size: int) -> None:
        response = _error(
            413,
            f"the request body has {size} bytes or more; the server takes at most "
            f"serve.max_body_bytes={self.max_bytes}: send fewer or shorter sentences",
            field="body",
            limit="serve.max_body_bytes",
            max=self.max_bytes,
            got=size,
        )
        await response(scope, receive, send)
