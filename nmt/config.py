"""Typed configuration: one dataclass per config group, registered in Hydra's ConfigStore.

The YAML files in `conf/` fill these schemas; because every primary config starts from its
schema, a misspelt key or a value of the wrong type fails at start-up with Hydra's message
naming the key (e.g. ``Key 'hiden_size' not in 'ModelConfig'``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from nmt.resources import data_dir


@dataclass
class DataConfig:
    """Where the parallel corpus is and how it becomes subword ids."""

    name: str = MISSING
    root: str = ""  # folder the split paths below may refer to as ${.root}
    src: str = MISSING  # source language code, e.g. de
    tgt: str = MISSING  # target language code, e.g. en
    # A split is a path prefix (PREFIX.<src> and PREFIX.<tgt>, two aligned plain-text
    # files, optionally .gz/.xz), a pattern with {lang}, or one TSV (.tsv, .tsv.gz, .tsv.xz).
    train: str = MISSING
    valid: str = MISSING
    test: str = ""
    # a data directory written by nmt-prepare: training maps it (train and valid are then
    # read from it, not from the files); "" = nmt-train prepares the files into RUN/data
    prepared: str = ""
    tsv_header: bool = False  # TSV's first line names the columns; pick src/tgt by name
    max_tokens: int = 100  # pairs with more subword tokens on either side are dropped
    max_ratio: float = 3.0  # pairs whose token-length ratio exceeds this are dropped
    max_valid: int = 0  # use at most this many validation pairs (0 = all)
    # SentencePiece
    vocab_size: int = 8000
    joint_vocab: bool = True
    spm_model_type: str = "unigram"  # unigram | bpe
    character_coverage: float = 1.0
    byte_fallback: bool = True  # unseen characters become bytes: no input is unencodable
    spm_max_sentences: int = 1_000_000  # SentencePiece trains on at most this many lines
    # batching
    batch_tokens: int = 4096  # padded tokens (max of source and target side) per batch


@dataclass
class ModelConfig:
    """Encoder and decoder sizes and cell type."""

    cell: str = "gru"  # gru | lstm | rnn (tanh Elman)
    emb_size: int = 256
    hidden_size: int = 512  # encoder hidden size per direction
    enc_layers: int = 1
    bidirectional: bool = True
    dec_hidden_size: int = 512
    dec_layers: int = 1
    dropout: float = 0.3  # on embeddings, between layers and before the output layer
    word_dropout: float = 0.0  # training: source and decoder-input pieces → UNK at this rate
    input_feeding: bool = True
    bridge: bool = True  # initial decoder state from the encoder's final state
    tie_embeddings: bool = False  # target embedding shared with the output layer
    output_bias: bool = True  # false: logits = W_o ã, no bias, as JoeyNMT (bench/peers/joeynmt)


@dataclass
class AttentionConfig:
    """Which attention mechanism the decoder uses."""

    type: str = "bahdanau"  # bahdanau | luong_dot | luong_general
    size: int = 512  # hidden size of the additive (Bahdanau) scorer


@dataclass
class OptimConfig:
    """Optimiser, clipping and learning-rate schedule."""

    name: str = "adam"  # adam | adamw
    lr: float = 1e-3
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.0
    clip_norm: float = 1.0  # clip the global gradient norm to this (0 = off)
    clip_value: float = 0.0  # clip each gradient element to ±this (0 = off)
    accumulate: int = 1  # batches whose gradients are summed into one update
    label_smoothing: float = 0.0
    # target tokens per chunk of the output layer fused with the loss (nmt/train/loss.py);
    # 0 = the plain path: whole-batch logits, then F.cross_entropy (more memory, same result)
    loss_chunk: int = 1024
    scheduler: str = "none"  # none | plateau | warmup
    plateau_factor: float = 0.5  # plateau: multiply lr by this when validation stalls
    plateau_patience: int = 2  # plateau: validations without improvement before decay
    warmup_updates: int = 1000  # warmup: linear rise, then inverse square-root decay
    min_lr: float = 1e-6


@dataclass
class DecodeConfig:
    """How translations are searched for."""

    strategy: str = "greedy"  # greedy | beam (beam with beam_size 1 is greedy search)
    beam_size: int = 1  # live hypotheses per sentence (beam only)
    # The objective search ranks by (nmt/search/scoring.py), T counting EOS:
    # log P(y|x) / lp(T) + word_reward * T. The default alpha 0 makes it raw log P.
    length_penalty: str = "norm"  # none | norm (T^alpha) | gnmt (((5+T)/6)^alpha)
    alpha: float = 0.0  # length penalty exponent (0 = no normalisation)
    word_reward: float = 0.0  # added per output token, EOS included
    nbest: int = 1  # hypotheses returned per sentence (at most beam_size)
    min_len: int = 0  # EOS is not allowed before this output position (T, EOS included)
    # When a sentence's beam search ends: exact = when no live hypothesis can still win
    # (the search's best under the objective); early = once beam_size hypotheses have ended
    # (fairseq's and JoeyNMT's rule: faster, may miss a longer, better one)
    stop: str = "exact"
    max_len_a: float = 1.5  # max output length = a * source length + b (subword tokens)
    max_len_b: int = 10
    batch_size: int = 64  # sentences decoded at once
    buffer_size: int = 1000  # input lines read, translated and written at a time (streaming)
    # the weights' precision: fp32 | bf16 (a bf16 copy; fp32 with a warning where the CPU has
    # no AVX512-BF16/AMX) | fp16 (CUDA)
    precision: str = "fp32"
    quantize: str = "none"  # none | int8 (CPU: dynamic int8 output layer and RNNs)


@dataclass
class LoopConfig:
    """When training validates, saves and stops."""

    max_updates: int = 0  # stop after this many updates (0 = no limit)
    max_epochs: int = 0  # stop after this many epochs (0 = no limit)
    max_minutes: float = 0.0  # stop after this much wall time (0 = no limit)
    valid_every: int = 500  # validate every this many updates (and at the end)
    patience: int = 0  # stop after this many validations without improvement (0 = off)
    early_stop_metric: str = "bleu"  # bleu | ppl: what "best" means for checkpoints
    log_every: int = 50  # metrics.csv row every this many updates
    save_every: int = 0  # also save checkpoints every this many updates (0 = at validation only)
    keep_last: int = 3  # keep this many checkpoints/update-NNNNNNN.pt beside last.pt (0 = none)
    keep_best: int = 1  # best.pt; with more, the keep_best best also as best-NNNNNNN.pt
    max_bad_updates: int = 5  # stop after this many non-finite updates in a row (each skipped)
    dist_timeout_s: float = 300.0  # under torchrun: a rank waiting longer for another fails
    # the products' precision: fp32 | bf16 (autocast, fp32 weights; CPUs with AVX512-BF16 or
    # AMX, and GPUs; elsewhere fp32 with a warning) | fp16 (CUDA, with loss scaling)
    precision: str = "fp32"


@dataclass
class TrainRunConfig:
    """Everything `nmt-train` needs; saved resolved as `config.yaml` in the run directory."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    train: LoopConfig = field(default_factory=LoopConfig)
    seed: int = 1234
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    # torch CPU threads: auto = the CPUs this process may use (affinity, cgroup quota; shared
    # among a torchrun node's ranks); N = exactly N; 0 = torch's own default
    threads: str = "auto"
    # how the heavy operations are computed (nmt/kernels): auto = the fast paths, each
    # library picked by measuring this machine; plain = torch's modules as written;
    # blas = fast paths without oneDNN; onednn = fast paths with oneDNN's products
    kernels: str = "auto"
    progress: bool = True  # tqdm progress bar
    resume: bool = False  # continue the run in hydra.run.dir from checkpoints/last.pt


@dataclass
class PrepareRunConfig:
    """Everything `nmt-prepare` needs: the data group, as nmt-train reads it, and where to."""

    data: DataConfig = field(default_factory=DataConfig)
    out: str = MISSING  # the data directory to write (reused when it holds this corpus)
    workers: str = "auto"  # encoding processes: auto = the CPUs this process may use; N
    progress: bool = True  # tqdm progress bars on stderr


@dataclass
class TranslateRunConfig:
    """Everything `nmt-translate` needs besides the run directory's own config."""

    # a run directory written by nmt-train, or a list of them: an ensemble (run=[A,B,C])
    run: Any = MISSING
    checkpoint: Any = "best"  # best | last | path to a .pt file; or a list, one per run
    input: str = "-"  # file to translate, - for standard input
    output: str = "-"  # file to write, - for standard output
    resume: bool = False  # continue output=FILE from the last buffer an interrupted run wrote
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    device: str = "auto"
    threads: str = "auto"  # as nmt-train's; auto also tunes decoding's count as it runs
    kernels: str = "auto"  # auto | plain | blas | onednn (as nmt-train's)


@dataclass
class EvaluateRunConfig:
    """Everything `nmt-evaluate` needs: what to score, how, and what report to write."""

    hyp: str = ""  # system output, one sentence a line (the baseline when systems are given)
    systems: list[str] = field(default_factory=list)  # more outputs, compared with the first
    ref: str = MISSING  # reference, one sentence a line, aligned with hyp
    src: str = ""  # source, aligned: length buckets by source words, attention ("" = by ref)
    metrics: list[str] = field(default_factory=lambda: ["bleu", "chrf", "ter"])
    tokenize: str = "13a"  # sacrebleu BLEU tokeniser: 13a | intl | zh | ja-mecab | none …
    lowercase: bool = False
    chrf_word_order: int = 0  # 0 = chrF, 2 = chrF++
    confidence: bool = False  # 95% bootstrap confidence intervals
    n_bootstrap: int = 1000  # resamples for the CIs and for significance=bs
    significance: str = "bs"  # with 2+ systems: none | bs | ar | both
    n_ar: int = 10000  # approximate randomisation trials
    seed: int = 12345  # resampling seed (sacrebleu's default)
    length_buckets: list[int] = field(default_factory=lambda: [10, 20, 30, 40, 50])
    worst: int = 50  # rows of the worst-sentences table (report.json holds every sentence)
    report_dir: str = ""  # write report.json, report.md, report.html and PNGs here
    run: str = ""  # run directory: training curves, its config and hashes in the manifest
    checkpoint: str = "best"  # for attention: best | last | path to a .pt file
    attention_lines: list[int] = field(default_factory=list)  # src lines (1-based) to plot
    json: str = ""  # also write the report data here as JSON ("" = don't)


@dataclass
class AnalysisDataConfig:
    """The test set `nmt-analyze` examines (and an optional dev set to calibrate alpha on)."""

    test_src: str = MISSING  # source sentences, one a line (plain, .gz or .xz)
    test_ref: str = MISSING  # references, aligned line by line with test_src
    dev_src: str = ""  # dev set for alpha × word reward calibration ("" = no calibration)
    dev_ref: str = ""
    max_sentences: int = 0  # analyse only the first N test sentences (0 = all)


@dataclass
class AnalysisConfig:
    """What `nmt-analyze` computes beyond the core comparison, and its budgets."""

    nbest: int = 0  # hypotheses kept per sentence for the n-best oracle (0 = decode.beam_size)
    tie_tolerance: float = 1e-6  # score differences within this count as ties (model error)
    short_ratio: float = 0.5  # an output with fewer tokens than this x reference is "short"
    sweep_beams: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16, 32, 64])
    sweep_alphas: list[float] = field(default_factory=lambda: [0.0, 0.6, 1.0])
    exact_sentences: int = 100  # exact search on the first N sentences (0 = off)
    exact_nodes: int = 5000  # model steps allowed per sentence in exact search
    exact_seconds: float = 10.0  # wall time allowed per sentence in exact search
    calibrate_alphas: list[float] = field(
        default_factory=lambda: [0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2]
    )
    # word rewards tried with every calibrate_alphas value (a joint grid; [0] = alpha alone)
    calibrate_word_rewards: list[float] = field(default_factory=lambda: [0.0, 0.02, 0.05])
    examples: int = 5  # examples shown per class, worst sentence BLEU first
    attention_lines: list[int] = field(default_factory=list)  # 1-based ([] = worst per class)


@dataclass
class AnalyzeRunConfig:
    """Everything `nmt-analyze` needs besides the run directory's own config."""

    # a run directory written by nmt-train, or a list of them: an ensemble (run=[A,B,C])
    run: Any = MISSING
    checkpoint: Any = "best"  # best | last | path to a .pt file; or a list, one per run
    data: AnalysisDataConfig = field(default_factory=AnalysisDataConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    out: str = ""  # analysis directory ("" = <run>/analysis/<timestamp>)
    resume: bool = False  # continue out=DIR's sentences.jsonl from an interrupted analysis
    device: str = "auto"
    threads: str = "auto"  # as nmt-train's; auto also tunes decoding's count as it runs
    kernels: str = "auto"  # auto | plain | blas | onednn (as nmt-train's)
    progress: bool = True  # tqdm progress bars on stderr


@dataclass
class ServeConfig:
    """The limits and batching of `nmt-serve` (nmt/serve/)."""

    max_body_bytes: int = 1_048_576  # larger request bodies are refused (413)
    max_sentences: int = 64  # sentences (or pairs) in one request
    max_chars: int = 1000  # characters in one sentence
    max_beam: int = 16  # the largest decode beam_size a request may ask for
    max_wait_ms: float = 5.0  # how long a request waits for others to share its model call
    max_batch: int = 64  # sentences in one model call (decoding at once, greedy) at most
    # greedy requests join the rows decoding between steps (false: batched whole, as beam's)
    continuous: bool = True
    drain_timeout_s: float = 30.0  # SIGTERM: in-flight requests may finish within this


@dataclass
class ServeRunConfig:
    """Everything `nmt-serve` needs besides the run directory's own config."""

    # a run directory written by nmt-train, or a list of them: an ensemble (run=[A,B,C])
    run: Any = MISSING
    checkpoint: Any = "best"  # best | last | path to a .pt file; or a list, one per run
    host: str = "127.0.0.1"  # the address to listen on (0.0.0.0: every interface)
    port: int = 8000  # 0 = any free port (printed at start-up)
    decode: DecodeConfig = field(default_factory=DecodeConfig)  # requests' defaults
    serve: ServeConfig = field(default_factory=ServeConfig)
    device: str = "auto"
    threads: str = "auto"  # as nmt-train's; auto also tunes decoding's count as it runs
    kernels: str = "auto"  # auto | plain | blas | onednn (as nmt-train's)


@dataclass
class AverageRunConfig:
    """Everything `nmt-average` needs: the run, which of its checkpoints, and where to write."""

    run: str = MISSING  # run directory written by nmt-train
    last: int = 0  # average the N newest saves (checkpoints/update-NNNNNNN.pt, last.pt)
    best: int = 0  # or the N best validations (best-NNNNNNN.pt, best.pt)
    checkpoints: list[str] = field(default_factory=list)  # or these checkpoint files
    output: str = ""  # the checkpoint to write ("" = RUN/checkpoints/average-last5.pt, ...)


def register_configs() -> None:
    """Put the schemas in Hydra's ConfigStore; the YAML files in conf/ extend them."""
    # ${nmt_data_dir:NAME}: a corpus committed under data/ (demo, bible), wherever nmt runs
    if not OmegaConf.has_resolver("nmt_data_dir"):
        OmegaConf.register_new_resolver("nmt_data_dir", lambda name: str(data_dir(name)))
    if not OmegaConf.has_resolver("nmt_demo_dir"):  # the same, as run configs of before name it
        OmegaConf.register_new_resolver("nmt_demo_dir", lambda: str(data_dir("demo")))
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainRunConfig)
    cs.store(name="prepare_schema", node=PrepareRunConfig)
    cs.store(name="translate_schema", node=TranslateRunConfig)
    cs.store(name="evaluate_schema", node=EvaluateRunConfig)
    cs.store(name="analyze_schema", node=AnalyzeRunConfig)
    cs.store(name="serve_schema", node=ServeRunConfig)
    cs.store(name="average_schema", node=AverageRunConfig)
