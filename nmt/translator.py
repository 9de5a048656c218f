"""Translator: everything a trained run directory can do, loaded from that directory alone.

`Translator.load(DIR)` reads the run's config, SentencePiece models and one checkpoint (never
the training data); then `translate`, `score`, `attention` and `analyze` take keyword decode
options over the run's decode config. The CLIs (nmt-translate, nmt-analyze) and the server
call these same methods. Results are typed `Record`s: `.to_json()` gives plain JSON values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from nmt import EOS_ID
from nmt.analysis.analyze import attention_pairs, sentence_records
from nmt.analysis.compare import compare
from nmt.analysis.records import SentenceRecord
from nmt.config import AnalysisConfig, DecodeConfig
from nmt.config_checks import validate_decode
from nmt.data.batching import make_batch, sentence_batches
from nmt.data.tokenizer import Vocabularies, one_line
from nmt.errors import ConfigError
from nmt.evaluate.plots import AttentionMap
from nmt.evaluate.records import Record
from nmt.kernels import bf16_check
from nmt.kernels.precision import DTYPES, resolve_precision
from nmt.kernels.threads import set_threads
from nmt.members import RunModel
from nmt.model import Seq2Seq
from nmt.rundir import RunDir
from nmt.search.decode import decode_ids, decode_nbest
from nmt.search.ensemble import Ensemble
from nmt.search.result import SearchResult
from nmt.search.scoring import Scorer
from nmt.train.distributed import resolve_device

# decode option name → the types its value may have (bool is an int to Python: refused)
_OPTION_TYPES = {
    f.name: (float, int) if isinstance(f.default, float) else (type(f.default),)
    for f in dataclasses.fields(DecodeConfig)
}


@dataclass
class Translation(Record):
    """One sentence's translation; T_out output tokens (EOS included where produced), S
    source tokens (EOS included). A blank input line is not decoded: "", zeros, empty lists."""

    text: str  # detokenised, one line
    score: float  # the objective search ranked by (nmt.search.Scorer)
    logprob: float  # log P(y|x), EOS included where produced
    tokens: list[str]  # output pieces (T_out,), "</s>" last where produced
    ids: list[int]  # output ids (T_out,)
    src_tokens: list[str]  # source pieces (S,)
    attention: list[list[float]] | None = None  # (T_out, S) rows sum to 1; attention=True only
    nbest: list[Translation] = field(default_factory=list)  # nbest > 1: best first, else []


@dataclass
class PairScore(Record):
    """A given target scored under the model: T target tokens, EOS included."""

    logprob: float  # log P(y|x)
    score: float  # the Scorer's objective under the decode config (length penalty)
    tokens: list[str]  # target pieces (T,)
    ids: list[int]  # target ids (T,)
    token_logprobs: list[float]  # log P of each token (T,)


@dataclass
class Attention(Record):
    """Attention weights of one output against its source: weights (T, S), rows sum to 1."""

    weights: list[list[float]]  # (T, S)
    src_tokens: list[str]  # (S,) EOS included
    tgt_tokens: list[str]  # (T,) EOS included where produced


@dataclass
class SentenceAnalysis(Record):
    """Why one translation missed its reference: nmt-analyze's record of the sentence
    (class, both scores, where the reference fell off the beam, n-best) and both attentions."""

    record: SentenceRecord  # exact search is not run: record.exact is None
    hyp_attention: Attention  # the beam's output ŷ
    ref_attention: Attention  # the reference y* forced


def format_nbest(translations: list[Translation], first: int = 0) -> str:
    """`sent_id ||| hypothesis ||| score ||| logprob` lines, best first; sent_id counts from
    `first` (0: the first sentence; a streamed buffer's first line number)."""
    return "".join(
        f"{i} ||| {h.text} ||| {h.score:.6f} ||| {h.logprob:.6f}\n"
        for i, t in enumerate(translations, start=first)
        for h in t.nbest
    )


def _attention(m: AttentionMap) -> Attention:
    return Attention(m.weights.tolist(), m.src_tokens, m.tgt_tokens)


class Translator:
    """A trained model (or an ensemble of several) with its vocabularies, ready to translate.

    run and checkpoint say where it was loaded from (None for a model built in memory); for an
    ensemble, the first member's, and `members` lists every (run, checkpoint).
    """

    def __init__(
        self,
        model: Seq2Seq,
        vocabs: Vocabularies,
        config: DictConfig,
        device: torch.device,
        run: RunDir | None = None,
        checkpoint: Path | None = None,
        members: list[tuple[RunDir, Path]] | None = None,
    ) -> None:
        self.model = model.eval()
        self._copies: dict[str, Seq2Seq] = {}  # int8 / bf16 / fp16 copies, made on first use
        self.vocabs = vocabs
        self.config = config
        self.device = device
        self.run = run
        self.checkpoint = checkpoint
        # (run, checkpoint) of each model: one, or an ensemble's in order
        self.members = members or ([(run, checkpoint)] if run and checkpoint else [])

    @classmethod
    def load(
        cls,
        run: str | Path | Sequence[str | Path],
        checkpoint: str | Path | Sequence[str | Path] = "best",
        device: str = "auto",
        threads: str | int = "auto",
        kernels: str = "auto",
    ) -> Translator:
        """Load config, SentencePiece models and a checkpoint (best | last | PATH) from a run
        directory; device: auto | cpu | cuda[:N]; threads: torch's CPU threads, auto (the
        CPUs this process may use, each batch on the count measured fastest: see
        nmt.kernels.threads), N, or 0 (torch's default); kernels: how the model computes
        (nmt.kernels.select).

        Several run directories make an ensemble (nmt.search.ensemble: one search over the
        average of their log-probabilities); they must share their SentencePiece models, and
        `checkpoint` is one for all of them or one per run. The first run's config gives the
        decode settings."""
        runs = [run] if isinstance(run, (str, Path)) else list(run)
        shared = isinstance(checkpoint, (str, Path))
        checkpoints = [checkpoint] * len(runs) if shared else list(checkpoint)
        if not runs:
            raise ConfigError(
                "run=[] names no run directory: give run=DIR, or run=[A,B] for an ensemble"
            )
        if len(checkpoints) != len(runs):
            raise ConfigError(
                f"checkpoint= names {len(checkpoints)} checkpoints for {len(runs)} runs: give "
                "one (best | last | PATH) for every run, or one per run in the same order"
            )
        members = [RunModel.open(r, str(c)) for r, c in zip(runs, checkpoints, strict=True)]
        first = members[0]
        for other in members[1:]:  # before any model is built: a mismatch costs no loading
            first.check_same_vocabularies(other)
        tuner = set_threads(threads)
        dev = resolve_device(device)
        models = [m.build(dev, kernels, tuner) for m in members]
        model = models[0] if len(models) == 1 else Ensemble(models)
        found = [(m.run, m.checkpoint) for m in members]
        return cls(model, first.vocabs, first.run.config, dev, first.run, first.checkpoint, found)

    def manifest(self) -> dict:
        """What a report records of the model: the run's manifest (RunDir.manifest); for an
        ensemble the first run's, with every member's checkpoint hash and an "ensemble" list."""
        if self.run is None:
            return {}
        if len(self.members) <= 1:
            return self.run.manifest(self.checkpoint)
        members = [run.manifest(c) for run, c in self.members]  # each checkpoint hashed once
        hashes = {path: h for m in members for path, h in m["checkpoint"].items()}
        return {**members[0], "checkpoint": hashes, "ensemble": members}

    # -- decode options ---------------------------------------------------------------------

    def decode_config(
        self, decode: DecodeConfig | DictConfig | None = None, **options: object
    ) -> DecodeConfig:
        """The run's decode config (or `decode`) with options over it, checked once by
        validate_decode: a ConfigError names a bad key. Options are DecodeConfig's fields;
        beam_size > 1 without strategy means strategy="beam"."""
        for name, value in options.items():
            if name not in _OPTION_TYPES:
                raise ConfigError(
                    f"unknown decode option {name!r}; the options are: {', '.join(_OPTION_TYPES)}"
                )
            types = _OPTION_TYPES[name]
            if isinstance(value, bool) != (types == (bool,)) or not isinstance(value, types):
                raise ConfigError(
                    f"decode option {name}={value!r} must be of type "
                    f"{' or '.join(t.__name__ for t in types)}"
                )
        base = self.config.decode if decode is None else decode
        if isinstance(base, DictConfig):
            base = OmegaConf.to_object(base)
            base = DecodeConfig(**base) if isinstance(base, dict) else base  # an untyped one
        if options.get("beam_size", 1) > 1 and "strategy" not in options:
            options["strategy"] = "beam"
        cfg = dataclasses.replace(base, **options)
        validate_decode(cfg)  # search trusts what passed it
        return cfg

    def decoding_model(self, cfg: DecodeConfig | DictConfig, scored: bool = False) -> Seq2Seq:
        """The model that decodes under cfg: this one, or its copy in int8 (decode.quantize,
        CPU only) or in bf16 / fp16 (decode.precision; fp32 with one warning on a device
        without it), made once. scored: for error analysis, which refuses the copies."""
        precision = resolve_precision(cfg.precision, self.device, "decode.precision")
        kind = "int8" if cfg.quantize == "int8" else precision
        if scored and kind != "fp32":
            raise ConfigError(
                f"error analysis compares log-probabilities exactly, and a {kind} model's "
                "depend on the batch and on decoding a step at a time or not (int8 scales "
                "each batch's inputs; bf16 rounds): analyse with decode.precision=fp32 "
                "decode.quantize=none"
            )
        if kind == "int8" and self.device.type != "cpu":
            raise ConfigError(
                f"decode.quantize={cfg.quantize} runs on the CPU only (torch's dynamic int8 "
                f"kernels); on {self.device.type} use decode.precision=bf16 or fp16"
            )
        if kind == "fp32":
            return self.model
        if kind not in self._copies:
            model = self.model
            if kind == "bf16" and self.device.type == "cpu":
                bf16_check(model.decoder.output.in_features, "decode.precision")
            self._copies[kind] = model.int8() if kind == "int8" else model.in_dtype(DTYPES[kind])
        return self._copies[kind]

    # -- translation --------------------------------------------------------------------------

    def translate_text(
        self,
        lines: list[str],
        *,
        decode: DecodeConfig | DictConfig | None = None,
        progress: bool = False,
        **options: object,
    ) -> list[str]:
        """One detokenised translation per input line, itself one line; blank lines stay
        blank. The best hypothesis only, as plain strings: nmt-translate's fast path."""
        cfg = self.decode_config(decode, **options)
        todo, _, hyp_ids = self._search_nonblank(lines, cfg, progress, decode_ids)
        out = [""] * len(lines)
        for i, hyp in zip(todo, self.vocabs.tgt.decode(hyp_ids), strict=True):
            out[i] = one_line(hyp)
        return out

    def translate(
        self,
        sentences: list[str] | str,
        *,
        attention: bool = False,
        decode: DecodeConfig | DictConfig | None = None,
        progress: bool = False,
        **options: object,
    ) -> list[Translation]:
        """A Translation per sentence (a str is one sentence), in input order, searched as
        the decode config and options say (e.g. beam_size=5, alpha=1.0, nbest=3); with
        attention=True each carries its attention matrix (T_out, S)."""
        lines = [sentences] if isinstance(sentences, str) else list(sentences)
        cfg = self.decode_config(decode, **options)
        todo, src_ids, results = self._search_nonblank(lines, cfg, progress, decode_nbest)
        out = [Translation("", 0.0, 0.0, [], [], []) for _ in lines]
        for i, ids, result in zip(todo, src_ids, results, strict=True):
            src_tokens = self.vocabs.src.pieces([*ids, EOS_ID])
            hyps = self.hypotheses(result, src_tokens, attention)
            if hyps:  # search returns at least one hypothesis for every sentence
                out[i] = dataclasses.replace(hyps[0], nbest=hyps if cfg.nbest > 1 else [])
        return out

    def _search_nonblank(
        self, lines: list[str], cfg: DecodeConfig, progress: bool, search: Callable
    ) -> tuple[list[int], list[list[int]], list]:
        """The positions of the non-blank lines, their source ids, and `search` (decode_ids or
        decode_nbest) over them, with a progress bar if asked."""
        todo = [i for i, line in enumerate(lines) if line.strip()]
        src_ids = self.vocabs.src.encode([lines[i] for i in todo])
        with tqdm(total=len(todo), disable=not progress, unit="sent") as bar:
            found = search(self.decoding_model(cfg), src_ids, cfg, self.device, bar.update)
        return todo, src_ids, found

    def hypotheses(
        self, result: SearchResult, src_tokens: list[str], attention: bool
    ) -> list[Translation]:
        """One sentence's SearchResult rows as Translations, best first."""
        texts = self.vocabs.tgt.decode(result.token_lists())
        out = []
        for r, (text, length) in enumerate(zip(texts, result.lengths.tolist(), strict=True)):
            ids = result.tokens[r, :length].tolist()
            weights = result.attention[r, :length].float().tolist() if attention else None
            out.append(
                Translation(
                    one_line(text),
                    float(result.score[r]),
                    float(result.logprob[r]),
                    self.vocabs.tgt.pieces(ids),
                    ids,
                    src_tokens,
                    weights,
                )
            )
        return out

    # -- given targets --------------------------------------------------------------------------

    def score(
        self,
        sources: list[str],
        targets: list[str],
        *,
        decode: DecodeConfig | DictConfig | None = None,
        **options: object,
    ) -> list[PairScore]:
        """log P(y|x) and the search objective of each target given its source, in order:
        the Scorer's numbers, as nmt-analyze reports them for references."""
        if len(sources) != len(targets):
            raise ConfigError(
                f"score() got {len(sources)} sources but {len(targets)} targets; give one "
                "target per source"
            )
        cfg = self.decode_config(decode, **options)
        scorer = Scorer.from_config(cfg)
        src_ids, tgt_ids = self.vocabs.src.encode(sources), self.vocabs.tgt.encode(targets)
        out: list[PairScore | None] = [None] * len(sources)
        for index in sentence_batches([len(s) for s in src_ids], cfg.batch_size):
            batch = make_batch([src_ids[i] for i in index], [tgt_ids[i] for i in index], index)
            batch = batch.to(self.device)
            objective, logprob, token = scorer.score(
                self.model, batch.src, batch.src_len, batch.tgt, batch.tgt_len
            )  # (B,), (B,), (B, T)
            for b, i in enumerate(index):
                ids = [*tgt_ids[i], EOS_ID]
                out[i] = PairScore(
                    float(logprob[b]),
                    float(objective[b]),
                    self.vocabs.tgt.pieces(ids),
                    ids,
                    token[b, : len(ids)].tolist(),
                )
        return out

    def attention(self, src: str, tgt: str) -> Attention:
        """The attention (T, S) of tgt forced through the decoder (teacher forcing) on src."""
        src_ids, tgt_ids = self.vocabs.src.encode([src])[0], self.vocabs.tgt.encode([tgt])[0]
        batch = make_batch([src_ids], [tgt_ids], [0]).to(self.device)
        with torch.inference_mode():
            _, weights = self.model(batch.src, batch.src_len, batch.tgt)  # (1, T, S)
        return Attention(
            weights[0].float().tolist(),
            self.vocabs.src.pieces([*src_ids, EOS_ID]),
            self.vocabs.tgt.pieces([*tgt_ids, EOS_ID]),
        )

    def analyze(
        self,
        src: str,
        ref: str,
        *,
        decode: DecodeConfig | DictConfig | None = None,
        **options: object,
    ) -> SentenceAnalysis:
        """nmt-analyze's record of one sentence (from the same functions: compare,
        sentence_records, attention_pairs), with beam search as the decode config and
        options say; the n-best holds beam_size hypotheses, ties within nmt-analyze's
        default tolerance decide for "model"."""
        cfg = self.decode_config(decode, **options)
        src_ids, ref_ids = self.vocabs.src.encode([src]), self.vocabs.tgt.encode([ref])
        model = self.decoding_model(cfg, scored=True)  # refuses what cannot be scored exactly
        compared = compare(model, src_ids, ref_ids, cfg, cfg.beam_size, self.device)
        tol = AnalysisConfig().tie_tolerance
        records = sentence_records(compared, [src], [ref], self.vocabs, tol)
        maps = attention_pairs(model, compared, records, src_ids, [1], self.vocabs, self.device)
        return SentenceAnalysis(records[0], _attention(maps[0]), _attention(maps[1]))
