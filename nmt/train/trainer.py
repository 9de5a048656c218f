"""The training loop: teacher forcing, clipping, accumulation, validation, checkpoints, stopping."""

from __future__ import annotations

import csv
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import sacrebleu
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from nmt import PAD_ID
from nmt.data.batching import Batch, TokenBatchSampler, make_batch
from nmt.errors import RunDirError
from nmt.model import Seq2Seq
from nmt.search.decode import decode_ids
from nmt.train.checkpoint import save_checkpoint
from nmt.train.dataset import EncodedSplit, prepare_data

log = logging.getLogger(__name__)

METRICS_FIELDS = [
    "update",
    "epoch",
    "split",
    "loss",
    "ppl",
    "bleu",
    "lr",
    "tokens_per_s",
    "elapsed_s",
]


def resolve_device(name: str) -> torch.device:
    """`auto` is CUDA when available, else CPU; anything else is passed to torch."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclass
class Progress:
    """Counters that decide validation, checkpoints and stopping."""

    update: int = 0
    epoch: int = 0
    best: float | None = None
    bad_validations: int = 0
    history: list[dict] = field(default_factory=list)


class Trainer:
    """Trains one model into one run directory, as the resolved config says."""

    def __init__(self, cfg: DictConfig, run_dir: Path) -> None:
        self.cfg = cfg
        self.run_dir = run_dir
        if (run_dir / "checkpoints" / "last.pt").exists():
            raise RunDirError(
                f"{run_dir} already holds a trained model (checkpoints/last.pt); pick another "
                "hydra.run.dir, or move that directory away: nmt never overwrites a run"
            )
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
        random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.device = resolve_device(cfg.device)
        self.vocabs, self.train_data, self.valid_data = prepare_data(cfg.data, run_dir)
        self.model = Seq2Seq.build(
            cfg.model, cfg.attention, self.vocabs.src.vocab_size, self.vocabs.tgt.vocab_size
        ).to(self.device)
        n_params = sum(p.numel() for p in self.model.parameters())
        log.info("model: %s parameters on %s", f"{n_params:,}", self.device)
        self.optimizer = self._optimizer()
        self.scheduler = self._scheduler()
        self.sampler = TokenBatchSampler(
            [len(s) for s in self.train_data.src],
            [len(t) for t in self.train_data.tgt],
            cfg.data.batch_tokens,
            shuffle=True,
            seed=cfg.seed,
        )
        self.progress = Progress()
        self.metrics_path = run_dir / "metrics.csv"
        with self.metrics_path.open("w", newline="") as f:
            csv.writer(f).writerow(METRICS_FIELDS)

    def _optimizer(self) -> torch.optim.Optimizer:
        o = self.cfg.optim
        kind = torch.optim.AdamW if o.name == "adamw" else torch.optim.Adam
        return kind(
            self.model.parameters(), lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay
        )

    def _scheduler(self):
        o = self.cfg.optim
        if o.scheduler == "plateau":
            mode = "max" if self.cfg.train.early_stop_metric == "bleu" else "min"
            return torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimizer,
                mode=mode,
                factor=o.plateau_factor,
                patience=o.plateau_patience,
                min_lr=o.min_lr,
            )
        if o.scheduler == "warmup":
            warm = max(1, o.warmup_updates)
            return torch.optim.lr_scheduler.LambdaLR(
                self.optimizer, lambda n: min((n + 1) / warm, math.sqrt(warm / (n + 1)))
            )
        return None

    # -- the loop ---------------------------------------------------------------------------

    def fit(self) -> dict:
        """Train until a stopping rule fires; return the best validation result."""
        loop = self.cfg.train
        start = time.monotonic()
        total = loop.max_updates or (
            loop.max_epochs * math.ceil(len(self.sampler) / self.cfg.optim.accumulate)
            if loop.max_epochs
            else None
        )
        bar = tqdm(total=total, disable=not self.cfg.progress, unit="upd", dynamic_ncols=True)
        window_tokens, window_start, running = 0, time.monotonic(), None
        stop = None
        self.model.train()
        while stop is None:
            self.sampler.set_epoch(self.progress.epoch)
            pending = 0
            for index in self.sampler:
                batch = self._batch(self.train_data, index)
                loss = self._loss(batch, self.cfg.optim.label_smoothing)
                (loss / (batch.ntokens * self.cfg.optim.accumulate)).backward()
                window_tokens += batch.ntokens
                pending += 1
                running = (
                    loss.item() / batch.ntokens
                    if running is None
                    else (0.95 * running + 0.05 * loss.item() / batch.ntokens)
                )
                if pending < self.cfg.optim.accumulate:
                    continue
                pending = 0
                self._update()
                bar.update(1)
                p = self.progress
                if p.update % loop.log_every == 0:
                    rate = window_tokens / max(time.monotonic() - window_start, 1e-9)
                    bar.set_postfix(
                        loss=f"{running:.3f}", tok_s=f"{rate:,.0f}", lr=f"{self.lr:.2e}"
                    )
                    self._write_metrics(
                        split="train",
                        loss=running,
                        ppl=math.exp(min(running, 50)),
                        tokens_per_s=rate,
                        elapsed_s=time.monotonic() - start,
                    )
                    window_tokens, window_start = 0, time.monotonic()
                if p.update % loop.valid_every == 0:
                    self._validate(start)
                stop = self._limit_reached(start)
                if stop is not None:
                    break
            else:
                self.progress.epoch += 1
                if loop.max_epochs and self.progress.epoch >= loop.max_epochs:
                    stop = f"reached train.max_epochs={loop.max_epochs}"
        bar.close()
        history = self.progress.history
        if not history or history[-1]["update"] != self.progress.update:
            self._validate(start)  # the final model is always validated and saved
        log.info("stopped: %s; best %s %s", stop, loop.early_stop_metric, self.progress.best)
        return {
            "stop": stop,
            "best": self.progress.best,
            "updates": self.progress.update,
            "history": self.progress.history,
        }

    def _limit_reached(self, start: float) -> str | None:
        loop = self.cfg.train
        if loop.max_updates and self.progress.update >= loop.max_updates:
            return f"reached train.max_updates={loop.max_updates}"
        if loop.max_minutes and time.monotonic() - start >= 60 * loop.max_minutes:
            return f"reached train.max_minutes={loop.max_minutes}"
        if loop.patience and self.progress.bad_validations >= loop.patience:
            return f"no improvement in {loop.patience} validations (train.patience)"
        return None

    def _batch(self, split: EncodedSplit, index: list[int]) -> Batch:
        return make_batch([split.src[i] for i in index], [split.tgt[i] for i in index], index).to(
            self.device
        )

    def _loss(self, batch: Batch, label_smoothing: float) -> torch.Tensor:
        """Summed token cross-entropy over the batch; padding never counts."""
        logits = self.model(batch.src, batch.src_len, batch.tgt)  # (B, T, V)
        return F.cross_entropy(
            logits.flatten(0, 1).float(),
            batch.tgt.flatten(),
            ignore_index=PAD_ID,
            label_smoothing=label_smoothing,
            reduction="sum",
        )

    def _update(self) -> None:
        o = self.cfg.optim
        if o.clip_value:
            torch.nn.utils.clip_grad_value_(self.model.parameters(), o.clip_value)
        if o.clip_norm:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), o.clip_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if isinstance(self.scheduler, torch.optim.lr_scheduler.LambdaLR):
            self.scheduler.step()
        self.progress.update += 1

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    # -- validation and checkpoints ---------------------------------------------------------

    @torch.inference_mode()
    def _valid_nll(self) -> float:
        self.model.eval()
        total, tokens = 0.0, 0
        sampler = TokenBatchSampler(
            [len(s) for s in self.valid_data.src],
            [len(t) for t in self.valid_data.tgt],
            self.cfg.data.batch_tokens,
            shuffle=False,
        )
        for index in sampler:
            batch = self._batch(self.valid_data, index)
            total += self._loss(batch, 0.0).item()
            tokens += batch.ntokens
        self.model.train()
        return total / max(tokens, 1)

    def _validate(self, start: float) -> None:
        """Perplexity and greedy BLEU on the validation set; save last/best; early stopping."""
        p, loop = self.progress, self.cfg.train
        nll = self._valid_nll()
        hyps = self.vocabs.tgt.decode(
            decode_ids(self.model, self.valid_data.src, self.cfg.decode, self.device)
        )
        bleu = sacrebleu.corpus_bleu(hyps, [self.valid_data.tgt_text]).score
        out_dir = self.run_dir / "valid"
        out_dir.mkdir(exist_ok=True)
        (out_dir / f"update-{p.update:07d}.txt").write_text("".join(h + "\n" for h in hyps))
        ppl = math.exp(min(nll, 50))
        value = bleu if loop.early_stop_metric == "bleu" else -ppl
        improved = p.best is None or value > p.best
        if improved:
            p.best, p.bad_validations = value, 0
        else:
            p.bad_validations += 1
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(bleu if loop.early_stop_metric == "bleu" else ppl)
        elapsed = time.monotonic() - start
        p.history.append({"update": p.update, "epoch": p.epoch, "ppl": ppl, "bleu": bleu})
        self._write_metrics(split="valid", loss=nll, ppl=ppl, bleu=bleu, elapsed_s=elapsed)
        log.info(
            "update %d epoch %d: valid ppl %.2f BLEU %.2f lr %.2e%s (%.0fs)",
            p.update,
            p.epoch + 1,
            ppl,
            bleu,
            self.lr,
            "  *best*" if improved else "",
            elapsed,
        )
        self._save("last")
        if improved:
            self._save("best")

    def _save(self, name: str) -> None:
        p = self.progress
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "progress": {
                "update": p.update,
                "epoch": p.epoch,
                "best": p.best,
                "bad_validations": p.bad_validations,
            },
            "config": OmegaConf.to_container(self.cfg, resolve=True),
        }
        save_checkpoint(state, self.run_dir / "checkpoints" / f"{name}.pt")

    def _write_metrics(self, split: str, **values: float) -> None:
        row = {
            "update": self.progress.update,
            "epoch": self.progress.epoch + 1,
            "split": split,
            "lr": self.lr,
            **values,
        }
        with self.metrics_path.open("a", newline="") as f:
            csv.DictWriter(f, METRICS_FIELDS).writerow(row)
