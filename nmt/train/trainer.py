"""The training loop: teacher forcing, clipping, accumulation, validation, checkpoints, stopping.

Training can stop at any moment (a kill, Ctrl-C, a full disk) and continue with
`resume=true` exactly as if it had not stopped: every checkpoint holds the model, optimiser,
scheduler, the position in the epoch's batches, the random generators and the counters.
"""

from __future__ import annotations

import logging
import math
import os
import random
import signal
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from nmt.data.batching import Batch, TokenBatchSampler
from nmt.data.prepared import HEADER
from nmt.errors import ConfigError, DivergedError
from nmt.kernels import select
from nmt.kernels.threads import resolve_threads
from nmt.model import Seq2Seq
from nmt.rundir import RunDir
from nmt.train.checkpoint import CheckpointDir, load_model_state
from nmt.train.checkpoint import write_text_atomic as _write_text
from nmt.train.dataset import load_data
from nmt.train.distributed import Distributed, resolve_device
from nmt.train.loss import batch_loss
from nmt.train.optim import (
    LossScaling,
    build_optimizer,
    build_scheduler,
    clip_gradients,
    diverged_message,
)
from nmt.train.signals import StopSignals
from nmt.train.state import (
    MetricsLog,
    Progress,
    check_training_state,
    resume_checkpoint,
    rng_state,
    set_rng_state,
)
from nmt.train.validate import valid_bleu, valid_nll

log = logging.getLogger(__name__)

METRICS_FIELDS = [
    *("update", "epoch", "split", "loss", "ppl", "bleu", "lr", "tokens_per_s", "elapsed_s")
]


class Trainer:
    """Trains one model into one run directory, as the resolved config says.

    With `cfg.resume` it continues from the run directory's checkpoints/last.pt (or starts
    there afresh if none was saved yet); without, it refuses a directory holding checkpoints.
    Under torchrun, `dist` is this process's rank (nmt/train/distributed.py says how the
    work is shared); rank 0 alone writes the run directory.
    """

    def __init__(self, cfg: DictConfig, run_dir: Path, dist: Distributed | None = None) -> None:
        self.cfg = cfg
        self.run_dir = run_dir
        self.dist = dist or Distributed(resolve_device(cfg.device))
        self.share = self.dist.share(cfg.optim.accumulate)  # batches of an update on this rank
        loop = cfg.train
        self.files = RunDir(run_dir)
        self.checkpoints = CheckpointDir(self.files.checkpoints, loop.keep_last, loop.keep_best)
        settings = OmegaConf.to_container(cfg, resolve=True)
        resume_state = resume_checkpoint(cfg.resume, settings, self.checkpoints, run_dir)
        if self.dist.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            self.checkpoints.remove_temporary()
            _write_text(self.files.config_path, OmegaConf.to_yaml(cfg, resolve=True))
        random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        # one count for the whole run: 1 and 2 threads sum a gradient differently
        threads, _ = resolve_threads(cfg.threads, int(os.environ.get("LOCAL_WORLD_SIZE", 1)))
        torch.set_num_threads(threads)
        self.device = self.dist.device
        with self.dist.main_first():  # rank 0 prepares the corpus; the others map what it wrote
            self.vocabs, self.train_data, self.valid_data = load_data(
                cfg.data, run_dir, threads, writes=self.dist.is_main
            )
        self.data_sha256 = self.train_data.header["train_sha256"]
        self.model = Seq2Seq.build(
            cfg.model, cfg.attention, self.vocabs.src.vocab_size, self.vocabs.tgt.vocab_size
        ).to(self.device)
        n_params = sum(p.numel() for p in self.model.parameters())
        log.info("model: %s parameters on %s", f"{n_params:,}", self.device)
        kernels, measured = select(
            *(cfg.kernels, self.device, self.model.decoder.output, cfg.optim.loss_chunk),
            training=not self.dist.active,  # DDP's all-reduce would pass through oneDNN's mode
            recorded=(resume_state or {}).get("kernels"),
            precision=loop.precision,
            encoder=self.model.encoder.rnn,
        )
        log.info("kernels: %s (%s)", kernels.describe(), measured)
        self.model.use(kernels)
        self.optimizer = build_optimizer(self.model, cfg.optim)
        self.scaling = LossScaling(self.model.kernels.precision, self.device)
        self.scheduler = build_scheduler(
            self.optimizer, cfg.optim, maximize=loop.early_stop_metric == "bleu"
        )
        self.sampler = TokenBatchSampler(
            self.train_data.lengths[:, 0],
            self.train_data.lengths[:, 1],
            cfg.data.batch_tokens,
            shuffle=True,
            seed=cfg.seed,
        )
        if len(self.sampler) < cfg.optim.accumulate:
            raise ConfigError(
                f"an epoch of the training data holds {len(self.sampler)} batches of "
                f"data.batch_tokens={cfg.data.batch_tokens}, fewer than one update needs "
                f"(optim.accumulate={cfg.optim.accumulate}): lower either"
            )
        self.progress = Progress()
        if resume_state is not None:
            self._restore(resume_state)
        self.files.check_spm(self.train_data.header["spm"], self.train_data.root / HEADER)
        self.net = self.dist.wrap(self.model)  # what trains: DDP around the model under torchrun
        self.metrics = MetricsLog(self.files.metrics_path, METRICS_FIELDS)
        if self.dist.is_main:
            self.metrics.start(self.progress.update if resume_state is not None else None)
        self.saved_update: int | None = self.progress.update if resume_state else None
        self.interrupted: int | None = None  # the signal that stopped training, on any rank

    def _restore(self, state: dict) -> None:
        last = self.checkpoints.last
        check_training_state(state, last, self.data_sha256, self.cfg.data.train, self.run_dir)
        load_model_state(self.model, state["model"], last)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaling.load_state_dict(state.get("loss_scale"))
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.progress = p = Progress.from_dict(state["progress"])
        ranks = state.get("rng_ranks", [])  # every rank's generators, from a torchrun run
        if len(ranks) == self.dist.world_size:
            set_rng_state(ranks[self.dist.rank])
        elif "rng" in state:
            set_rng_state(state["rng"])
        else:
            log.warning("%s has no RNG state (older nmt): the resumed run is not exact", last)
        self.sampler.set_epoch(p.epoch)
        log.info(
            "resuming from %s: update %d, epoch %d, batch %d of %d",
            last,
            p.update,
            p.epoch + 1,
            p.batch,
            len(self.sampler),
        )

    # -- the loop ---------------------------------------------------------------------------

    def fit(self) -> dict:
        """Train until a stopping rule fires; return the best validation result.

        `signal` in the result is the number of the signal (SIGINT, SIGTERM) that stopped
        training after saving a checkpoint, or None.
        """
        loop, p = self.cfg.train, self.progress
        self._start = time.monotonic() - p.elapsed_s
        total = loop.max_updates or (
            loop.max_epochs * (len(self.sampler) // self.cfg.optim.accumulate)
            if loop.max_epochs
            else None
        )
        bar = tqdm(
            total=total,
            initial=p.update,
            disable=not self.cfg.progress or not self.dist.is_main,
            unit="upd",
            dynamic_ncols=True,
        )
        self._window = (0, time.monotonic())
        self.model.train()
        with StopSignals() as signals:
            try:
                stop = self._should_stop(signals)
                while stop is None:
                    stop = self._epoch(bar, signals)
            finally:
                bar.close()
        if self.interrupted:
            if self.saved_update != p.update:
                self._save(best=False)
            log.warning("%s: saved %s at update %d", stop, self.checkpoints.last, p.update)
        elif not p.history or p.history[-1]["update"] != p.update:
            self._validate()  # the final model is always validated and saved
        log.info("stopped: %s; best %s %s", stop, loop.early_stop_metric, p.best)
        return {
            "stop": stop,
            "best": p.best,
            "updates": p.update,
            "history": p.history,
            "signal": self.interrupted,
        }

    def _epoch(self, bar: tqdm, signals: StopSignals) -> str | None:
        """Train on the rest of the current epoch; a stop reason, or None to go on."""
        p, accumulate = self.progress, self.cfg.optim.accumulate
        self.sampler.set_epoch(p.epoch)
        batches = self.sampler.batches()
        # the last batches, too few for a whole update, are left out: epochs start clean
        while p.batch + accumulate <= len(batches):
            mine = self.dist.shard(batches[p.batch : p.batch + accumulate])
            p.batch += accumulate
            losses = [self._backward(b, last=k == len(mine) - 1) for k, b in enumerate(mine)]
            if self._step(self.dist.unshard(losses)):  # every rank's (loss, tokens), in order
                bar.update(1)
                self._after_update()
            if stop := self._should_stop(signals):
                return stop
        p.epoch, p.batch = p.epoch + 1, 0
        if self.cfg.train.max_epochs and p.epoch >= self.cfg.train.max_epochs:
            return f"reached train.max_epochs={self.cfg.train.max_epochs}"
        return None

    def _backward(self, index: list[int], last: bool) -> tuple[float, int]:
        """Add one batch's gradient, scaled so that the update's (summed, and averaged over
        the ranks by DDP) is the mean of its batches' per-token gradients; (summed loss, tokens).
        """
        batch = self.train_data.batch(index).to(self.device)
        # DDP all-reduces at an update's last batch
        with self.dist.no_sync(self.net, last), self.model.kernels.training():
            loss = self._loss(batch, self.cfg.optim.label_smoothing)
            self.scaling.backward(loss / (batch.ntokens * self.share))
        return loss.item(), batch.ntokens

    def _should_stop(self, signals: StopSignals) -> str | None:
        """Why training stops after this update, or None; all ranks agree."""
        limit = self._limit_reached()
        signum, limited = self.dist.max(signals.received or 0, limit is not None)
        if signum:
            self.interrupted = int(signum)
            return f"interrupted by {signal.Signals(self.interrupted).name}"
        if limited:
            return limit or "another rank reached train.max_minutes"
        return None

    def _step(self, losses: list[tuple[float, int]]) -> bool:
        """Clip and apply the accumulated gradients; skip them if anything is not finite."""
        p = self.progress
        params = [q for q in self.model.parameters() if q.grad is not None]
        loss_ok = all(math.isfinite(loss) for loss, _ in losses)
        self.scaling.unscale(self.optimizer)
        norm = clip_gradients(params, self.cfg.optim)
        if self.scaling.overflowed(loss_ok, norm):  # fp16: a smaller scale, not divergence
            self.optimizer.zero_grad(set_to_none=True)
            return False
        if not (loss_ok and math.isfinite(norm)):
            self.optimizer.zero_grad(set_to_none=True)
            p.bad_updates += 1
            p.skipped_updates += 1
            limit = self.cfg.train.max_bad_updates
            log.warning(
                "update %d skipped: non-finite %s (%d in a row; training stops at "
                "train.max_bad_updates=%d)",
                p.update + 1,
                "loss" if not loss_ok else "gradient",
                p.bad_updates,
                limit,
            )
            if p.bad_updates >= limit:
                last, saved = str(self.checkpoints.last), self.saved_update
                raise DivergedError(diverged_message(p.update, limit, last, saved))
            return False
        p.bad_updates = 0
        for loss, ntokens in losses:
            per_token = loss / ntokens
            p.running_loss = (
                per_token if p.running_loss is None else 0.95 * p.running_loss + 0.05 * per_token
            )
        self.scaling.step(self.optimizer)
        self.optimizer.zero_grad(set_to_none=True)
        if isinstance(self.scheduler, torch.optim.lr_scheduler.LambdaLR):
            self.scheduler.step()
        p.update += 1
        self._window = (self._window[0] + sum(n for _, n in losses), self._window[1])
        return True

    def _after_update(self) -> None:
        """Log, validate and save as the counters say; a checkpoint follows the rows it covers."""
        p, loop = self.progress, self.cfg.train
        if p.update % loop.log_every == 0 and self.dist.is_main:
            tokens, since = self._window
            rate = tokens / max(time.monotonic() - since, 1e-9)
            self.metrics.write(
                self._row(
                    split="train",
                    loss=p.running_loss,
                    ppl=math.exp(min(p.running_loss, 50)),
                    tokens_per_s=rate,
                    elapsed_s=self._elapsed(),
                )
            )
            self._window = (0, time.monotonic())
        paused = time.monotonic()
        if p.update % loop.valid_every == 0:
            self._validate()
        elif loop.save_every and p.update % loop.save_every == 0:
            self._save(best=False)
        # tokens/s counts training time only: validation and saving are left out of the window
        tokens, since = self._window
        self._window = (tokens, since + time.monotonic() - paused)

    def _elapsed(self) -> float:
        return time.monotonic() - self._start

    def _limit_reached(self) -> str | None:
        loop = self.cfg.train
        if loop.max_updates and self.progress.update >= loop.max_updates:
            return f"reached train.max_updates={loop.max_updates}"
        if loop.max_minutes and self._elapsed() >= 60 * loop.max_minutes:
            return f"reached train.max_minutes={loop.max_minutes}"
        if loop.patience and self.progress.bad_validations >= loop.patience:
            return f"no improvement in {loop.patience} validations (train.patience)"
        return None

    def _loss(self, batch: Batch, label_smoothing: float) -> torch.Tensor:
        return batch_loss(self.net, self.model, batch, label_smoothing)

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    # -- validation and checkpoints ---------------------------------------------------------

    def _validate(self) -> None:
        """Perplexity and greedy BLEU on the validation set; save last/best; early stopping."""
        p, loop, cfg = self.progress, self.cfg.train, self.cfg
        data, dist = self.valid_data, self.dist
        nll = valid_nll(self.model, data, cfg.data.batch_tokens, dist, self.device)
        bleu, hyps = valid_bleu(self.model, data, cfg.decode, self.vocabs, dist, self.device)
        if self.dist.is_main:
            out = self.files.valid_output(p.update)
            out.parent.mkdir(exist_ok=True)
            out.write_text("".join(h + "\n" for h in hyps))
        ppl = math.exp(min(nll, 50))
        improved = p.record_validation(
            bleu if loop.early_stop_metric == "bleu" else -ppl, loop.keep_best
        )
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(bleu if loop.early_stop_metric == "bleu" else ppl)
        elapsed = self._elapsed()
        p.history.append({"update": p.update, "epoch": p.epoch, "ppl": ppl, "bleu": bleu})
        if self.dist.is_main:
            self.metrics.write(
                self._row(split="valid", loss=nll, ppl=ppl, bleu=bleu, elapsed_s=elapsed)
            )
        said = f"valid ppl {ppl:.2f} BLEU {bleu:.2f} lr {self.lr:.2e}{'  *best*' * improved}"
        log.info("update %d epoch %d: %s (%.0fs)", p.update, p.epoch + 1, said, elapsed)
        self._save(best=improved)

    def _save(self, best: bool) -> None:
        p = self.progress
        p.elapsed_s = self._elapsed()
        rngs = self.dist.gather(rng_state())  # each rank resumes its own dropout stream
        if not self.dist.is_main:  # rank 0 writes the checkpoint
            self.saved_update = p.update
            return
        state = {
            "format": 2,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "progress": p.as_dict(),
            "rng": rngs[0],
            **({"rng_ranks": rngs} if self.dist.active else {}),
            "data": {
                "train_sha256": self.data_sha256,
                "prepared": self.train_data.header["fingerprint"],
                "train_pairs": len(self.train_data),
                "shuffle_seed": self.sampler.seed,
                "epoch_batches": len(self.sampler),
                "spm_sha256": self.files.spm_hashes(),  # resume refuses an edited model
            },
            "config": OmegaConf.to_container(self.cfg, resolve=True),
            "kernels": self.model.kernels.as_dict(),
            "loss_scale": self.scaling.state_dict(),
        }
        kept = [int(update) for _, update in p.best_kept]
        self.checkpoints.save(state, p.update, best, kept)
        self.saved_update = p.update

    def _row(self, split: str, **values: float) -> dict:
        p = self.progress
        return {"update": p.update, "epoch": p.epoch + 1, "split": split, "lr": self.lr, **values}
