"""The server's request and response bodies: typed, so FastAPI validates them and writes the
OpenAPI schema (/openapi.json, /docs).

Requests refuse unknown fields and values of the wrong type (422 naming the field); decode
options left out take the server's defaults (conf/serve.yaml's decode:, shown by /info).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

_STRICT = ConfigDict(extra="forbid", strict=True)


class DecodeOptions(BaseModel):
    """Decode settings a request may change (nmt.config.DecodeConfig; null = the default)."""

    model_config = _STRICT

    strategy: Literal["greedy", "beam"] | None = None
    beam_size: int | None = Field(None, description="live hypotheses; at most serve.max_beam")
    length_penalty: Literal["none", "norm", "gnmt"] | None = None
    alpha: float | None = Field(None, description="length penalty exponent")
    word_reward: float | None = None
    min_len: int | None = None
    stop: Literal["exact", "early"] | None = None
    max_len_a: float | None = None
    max_len_b: int | None = None

    def given(self) -> dict:
        """The options the request set, by DecodeConfig name."""
        return self.model_dump(include=set(DecodeOptions.model_fields), exclude_none=True)


class TranslateRequest(DecodeOptions):
    """POST /translate: sentences to translate, with decode options for all of them."""

    sentences: list[str] = Field(description="at most serve.max_sentences, each serve.max_chars")
    nbest: int | None = Field(None, description="hypotheses per sentence, at most beam_size")
    attention: bool = Field(False, description="return each translation's attention (T_out, S)")

    def given(self) -> dict:
        options = super().given()
        if self.nbest is not None:
            options["nbest"] = self.nbest
        return options


class ScoreRequest(BaseModel):
    """POST /score: log P(target | source) and the search objective for each aligned pair."""

    model_config = _STRICT

    sources: list[str]
    targets: list[str] = Field(description="as many as sources, aligned")
    length_penalty: Literal["none", "norm", "gnmt"] | None = None
    alpha: float | None = None
    word_reward: float | None = None

    def given(self) -> dict:
        return self.model_dump(exclude_none=True, exclude={"sources", "targets"})


class AnalyzeRequest(DecodeOptions):
    """POST /analyze: why the beam's translation of source missed reference."""

    source: str
    reference: str


class Hypothesis(BaseModel):
    """One hypothesis: text, both scores, pieces (EOS included where produced)."""

    text: str
    score: float = Field(description="the objective search ranked by")
    logprob: float = Field(description="log P(y|x)")
    tokens: list[str]
    ids: list[int]


class TranslationOut(Hypothesis):
    """One sentence's translation; attention (T_out, S) when asked; the n-best when nbest > 1."""

    src_tokens: list[str]
    attention: list[list[float]] | None = None
    nbest: list[Hypothesis] = []


class TranslateResponse(BaseModel):
    translations: list[TranslationOut]  # one per sentence, in request order


class PairScoreOut(BaseModel):
    logprob: float = Field(description="log P(y|x), EOS included")
    score: float = Field(description="the search objective under the length penalty")
    tokens: list[str]
    ids: list[int]
    token_logprobs: list[float]


class ScoreResponse(BaseModel):
    scores: list[PairScoreOut]  # one per pair, in request order


class AttentionOut(BaseModel):
    weights: list[list[float]] = Field(description="(T, S); each row sums to 1")
    src_tokens: list[str]
    tgt_tokens: list[str]


class NbestEntryOut(BaseModel):
    text: str
    logprob: float
    score: float
    bleu: float


class AnalysisRecordOut(BaseModel):
    """nmt-analyze's record of one sentence (nmt.analysis.records.SentenceRecord)."""

    model_config = ConfigDict(populate_by_name=True)

    class_: str = Field(alias="class", description="match | search | objective | model")
    tie: bool
    src: str
    ref: str
    hyp: str
    ref_logprob: float
    hyp_logprob: float
    ref_score: float
    hyp_score: float
    ref_len: int
    hyp_len: int
    limit: int = Field(description="the beam's length limit (tokens, EOS included)")
    ref_over_limit: bool
    bleu: float
    chrf: float
    ref_tokens: list[str]
    hyp_tokens: list[str]
    ref_ranks: list[int] = Field(description="slot of the reference prefix per step; K+1 = out")
    fell_off_step: int | None
    fell_off_reason: str | None = Field(description="pruned | stopped | length limit")
    ref_nbest_rank: int | None
    nbest: list[NbestEntryOut]


class AnalyzeResponse(BaseModel):
    record: AnalysisRecordOut
    label: str = Field(description="the class in words, e.g. search error")
    action: str = Field(description="what to do about this class of error")
    hyp_attention: AttentionOut  # the beam's output ŷ
    ref_attention: AttentionOut  # the reference y*, forced


class Health(BaseModel):
    status: Literal["ok"]
    queued: int = Field(description="sentences waiting for a model call")
    running: int = Field(description="sentences in the model call under way")
    batches: int = Field(description="model calls made by /translate")
    largest_batch: int


class ErrorOut(BaseModel):
    """Every 4xx body: what went wrong, the field or config limit, and a sentence for people."""

    error: Literal["invalid_request", "limit_exceeded"]
    message: str
    field: str | None = None
    limit: str | None = Field(None, description="the config key, e.g. serve.max_sentences")
    max: float | None = None
    got: float | None = None
