"""The one check of a command's config at start-up: option values outside their choices,
impossible numbers and contradictory decode settings are refused naming the key."""

from __future__ import annotations

from collections.abc import Callable

from omegaconf import DictConfig, OmegaConf

from nmt.config import DecodeConfig
from nmt.errors import ConfigError

ALLOWED = {
    "model.cell": ("gru", "lstm", "rnn"),
    "attention.type": ("bahdanau", "luong_dot", "luong_general"),
    "optim.name": ("adam", "adamw"),
    "optim.scheduler": ("none", "plateau", "warmup"),
    "decode.strategy": ("greedy", "beam"),
    "decode.length_penalty": ("none", "norm", "gnmt"),
    "decode.stop": ("exact", "early"),
    "data.spm_model_type": ("unigram", "bpe"),
    "train.early_stop_metric": ("bleu", "ppl"),
    "kernels": ("auto", "plain", "blas", "onednn"),
    "train.precision": ("fp32", "bf16", "fp16"),
    "decode.precision": ("fp32", "bf16", "fp16"),
    "decode.quantize": ("none", "int8"),
}
_POSITIVE = """
    data.vocab_size data.batch_tokens data.max_tokens data.max_ratio model.emb_size
    model.hidden_size model.enc_layers model.dec_hidden_size model.dec_layers optim.lr
    optim.accumulate decode.beam_size decode.batch_size decode.buffer_size decode.nbest
    train.valid_every train.log_every train.keep_best train.max_bad_updates
    train.dist_timeout_s serve.max_body_bytes serve.max_sentences serve.max_chars
    serve.max_beam serve.max_batch
"""
POSITIVE = tuple(_POSITIVE.split())  # keys, one a word
_NON_NEGATIVE = """
    model.dropout model.word_dropout optim.clip_norm optim.clip_value optim.label_smoothing
    optim.loss_chunk decode.max_len_a decode.max_len_b decode.alpha decode.min_len train.max_updates
    train.max_epochs train.max_minutes train.patience train.save_every train.keep_last
    data.max_valid serve.max_wait_ms serve.drain_timeout_s
"""
NON_NEGATIVE = tuple(_NON_NEGATIVE.split())  # keys, one a word
BELOW_ONE = ("model.dropout", "model.word_dropout", "optim.label_smoothing")  # rates


def _refuse_values(value_of: Callable[[str], object], prefix: str = "") -> None:
    """Refuse values outside their choices and impossible numbers among the keys starting
    with prefix, naming the key; value_of(key) is the key's value (None: not in the config)."""

    def values(keys):
        return ((key, value_of(key)) for key in keys if key.startswith(prefix))

    for key, value in values(ALLOWED):
        if value is not None and value not in ALLOWED[key]:
            raise ConfigError(f"{key}={value!r} is not one of: {', '.join(ALLOWED[key])}")
    for key, value in values(POSITIVE):
        if value is not None and value <= 0:
            raise ConfigError(f"{key}={value} must be greater than 0")
    for key, value in values(NON_NEGATIVE):
        if value is not None and value < 0:
            raise ConfigError(f"{key}={value} must be 0 or more")
    for key, value in values(BELOW_ONE):
        if value is not None and value >= 1:
            raise ConfigError(f"{key}={value} is a rate: it must be below 1 (e.g. 0.1)")


def _refuse_contradictions(decode: DecodeConfig | DictConfig) -> None:
    """Refuse decode settings that contradict each other, naming both keys."""
    if decode.strategy == "greedy" and decode.beam_size != 1:
        raise ConfigError(
            f"decode.strategy=greedy keeps one hypothesis but decode.beam_size={decode.beam_size}; "
            "use decode=beam (or decode.strategy=beam) for a wider beam"
        )
    if decode.nbest > decode.beam_size:
        raise ConfigError(
            f"decode.nbest={decode.nbest} is more than decode.beam_size={decode.beam_size}: a "
            "beam of K returns at most K hypotheses; raise decode.beam_size or lower decode.nbest"
        )
    quantize, precision = getattr(decode, "quantize", "none"), getattr(decode, "precision", "fp32")
    if quantize != "none" and precision != "fp32":
        raise ConfigError(
            f"decode.quantize={quantize} multiplies int8 weights, not decode.precision="
            f"{precision} ones: choose one of the two"
        )


def thread_count(threads: object) -> int | None:
    """The config key `threads`: None for auto, else its count (0: torch's own default)."""
    text = str(threads).strip().lower()
    if text == "auto":
        return None
    if not text.isdigit():
        raise ConfigError(
            f"threads={threads!r} must be auto (the CPUs this process may use) or a whole "
            "number of threads (0: torch's own default)"
        )
    return int(text)


def validate(cfg) -> None:
    """Refuse option values outside their choices, impossible numbers and contradictory
    decode settings, naming the key: the one check of a command's config, at start-up."""
    _refuse_values(lambda key: OmegaConf.select(cfg, key))
    if OmegaConf.select(cfg, "threads") is not None:
        thread_count(cfg.threads)
    if OmegaConf.select(cfg, "decode") is not None:
        _refuse_contradictions(cfg.decode)


def validate_decode(decode: DecodeConfig | DictConfig) -> None:
    """Refuse a decode config that validate() would refuse, with the same messages.

    The one check of decode settings given outside a command's config (the Translator's
    decode argument, a run's config.yaml): search (nmt/search/) trusts what passed it.
    """
    _refuse_values(lambda key: getattr(decode, key.removeprefix("decode.")), "decode.")
    _refuse_contradictions(decode)
