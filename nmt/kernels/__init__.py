"""How the model's heavy operations are computed: torch as written, or a faster way to the same.

`nmt/model/` writes the maths once and calls these operations through the `Kernels` it holds
(`Seq2Seq.use`); the training loss calls `loss`:

- `rnn(module, x, lengths)`: a stacked, maybe bidirectional torch RNN over padded inputs;
- `linear(layer, x)`: the output layer;
- `loss(layer, x, target, label_smoothing)`: the summed cross-entropy of the output layer;
- `recur(module, x, hx)`: a torch RNN from a given state (the decoder's);
- `dropout(module, x)`: an `nn.Dropout` module's dropout of x;
- `training()`: the context one training batch's forward and backward run in, autocast
  when `precision` is bf16 or fp16 (`nmt.kernels.precision`);
- `unit(work)`: the context a decoding batch runs in, on as many threads as the tuner
  measured fastest (`nmt.kernels.threads`; the count is fixed when there is no tuner).

`Kernels()` is the plain path: torch's modules over a packed batch, the output layer in one
call, whole-batch logits for the loss. `select` gives the fast paths for the machine it
runs on; each computes the same up to float rounding (tests/kernels/ holds them equal to the
plain path, gradients included):

- rnn "by_direction" (CPU): each direction of each layer unpacked (`nmt.kernels.cpu`);
  where no gradient flows (decoding, validation) the packed batch instead when the probe
  measured it faster here (`rnn_decode`): by_direction's reason is training's backward;
- logits "blocked" or "onednn" (CPU, no autograd): the output layer a block of vocabulary
  columns at a time, or through oneDNN on a packed weight (`nmt.kernels.onednn`);
- gemm "onednn" (CPU training, one process): every product of a batch through oneDNN;
- loss_chunk > 0: the output layer fused with the loss, chunk rows at a time
  (`nmt.kernels.loss`): logits never held for a whole batch;
- dropout "fast" (CPU training): the mask from 16 random bits an element, four elements a
  64-bit draw, instead of torch's one Bernoulli draw each (`nmt.kernels.dropout`): the same
  distribution (keep probability within 2⁻¹⁷), not the same masks.

Which library multiplies faster is measured at start-up (`nmt.kernels.probe`), never
assumed from the processor's vendor. torch-private APIs are used only in this package.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nmt import PAD_ID
from nmt.config_checks import ALLOWED
from nmt.errors import ConfigError
from nmt.kernels import probe
from nmt.kernels.cpu import blocked_linear, packed_rnn, rnn_by_direction, rnn_from_state
from nmt.kernels.dropout import fast_dropout
from nmt.kernels.loss import linear_cross_entropy
from nmt.kernels.onednn import (
    OneDNNMatmul,
    PackedLinear,
    cap_caches,
    onednn_available,
    onednn_matmul_available,
)
from nmt.kernels.precision import autocast, autocast_dtype, resolve_precision
from nmt.kernels.threads import ThreadTuner

log = logging.getLogger(__name__)

CHOICES = ALLOWED["kernels"]  # auto | plain | blas | onednn: the `kernels` config key


@dataclass
class Kernels:
    """The way each heavy operation is computed; the defaults are the plain path."""

    rnn_path: str = "packed"  # packed (torch over a packed batch) | by_direction (CPU)
    logits_path: str = "plain"  # without autograd on the CPU: plain | blocked | onednn
    gemm: str = "blas"  # training's products on the CPU: blas (torch's own) | onednn
    loss_chunk: int = 0  # > 0: output layer fused with the loss, this many rows a chunk
    rnn_decode: str = ""  # the RNN where no gradient flows: "" (rnn_path's) | packed
    precision: str = "fp32"  # training's products: fp32 | bf16 | fp16 (autocast)
    device_type: str = "cpu"  # where the model runs: what training()'s autocast covers
    dropout_path: str = "plain"  # training's dropout on the CPU: plain (torch's) | fast
    _packed: PackedLinear = field(default_factory=PackedLinear, repr=False, compare=False)
    tuner: ThreadTuner | None = field(default=None, repr=False, compare=False)  # decoding's
    # a training batch's low-precision copies of the weights, as autocast keeps its own;
    # None outside training()
    _casts: dict | None = field(default=None, repr=False, compare=False)

    def rnn(self, rnn: nn.RNNBase, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Run a batch-first RNN over the real tokens only, never over padding.

        x: (B, S, I), lengths: (B,) ≥ 1 → states (B, S, D·H), zero at padding, and final
        (B, D·H): the last layer's final hidden state of each direction, concatenated.
        """
        if self.rnn_path == "by_direction" and x.device.type == "cpu":
            grad = any(_needs_grad(x, w) for w in rnn._flat_weights)
            if grad or self.rnn_decode != "packed":
                return rnn_by_direction(rnn, x, lengths, autocast_dtype("cpu"))
        return packed_rnn(rnn, x, lengths)

    def recur(self, rnn: nn.RNNBase, x: Tensor, hx: Tensor | tuple[Tensor, Tensor]):
        """rnn(x, hx) for a batch-first x (B, T, I) from state hx ((L, B, H), or (h, c) for
        an LSTM) → outputs (B, T, H) and the new state; under autocast in its dtype."""
        dtype = autocast_dtype(x.device.type)
        if dtype is None:
            return rnn(x, hx)
        weights = [self._cast(w, dtype) for w in rnn._flat_weights]
        return rnn_from_state(rnn, x, hx, dtype, weights)

    def _cast(self, weight: Tensor, dtype: torch.dtype) -> Tensor:
        """weight in dtype, cast once per training batch (every decoder step reuses it);
        outside training() every call casts: the weights may have changed."""
        if self._casts is None:
            return weight.to(dtype)
        key = (id(weight), dtype)
        if key not in self._casts:
            self._casts[key] = weight.to(dtype)
        return self._casts[key]

    def linear(self, layer: nn.Linear, x: Tensor) -> Tensor:
        """layer(x): x (..., In) → (..., Out)."""
        fast = autocast_dtype(x.device.type) is None  # autocast: torch's own low precision
        if fast and x.device.type == "cpu" and not _needs_grad(x, layer.weight):
            if self.logits_path == "onednn":
                return self._packed(x, layer.weight, layer.bias)
            if self.logits_path == "blocked":
                out = blocked_linear(x.reshape(-1, x.size(-1)), layer.weight, layer.bias)
                return out.view(*x.shape[:-1], -1)
        return layer(x)

    def dropout(self, module: nn.Dropout, x: Tensor) -> Tensor:
        """module(x): x with elements zeroed at rate module.p and the rest scaled by the
        inverse keep probability while module trains; x itself otherwise."""
        fast = self.dropout_path == "fast" and x.device.type == "cpu"
        if fast and module.training and 0.0 < module.p < 1.0:
            return fast_dropout(x, module.p)
        return module(x)

    def loss(self, layer: nn.Linear, x: Tensor, target: Tensor, label_smoothing: float) -> Tensor:
        """Summed token cross-entropy of layer(x) against target, PAD_ID never counted.

        x: (..., H) the output layer's inputs, target: (...) ids → a 0-dim float32 tensor.
        """
        if self.loss_chunk:
            return linear_cross_entropy(
                *(x, layer.weight, layer.bias, target, label_smoothing, self.loss_chunk),
                dtype=autocast_dtype(x.device.type),  # autocast does not see inside it
            )
        return F.cross_entropy(
            layer(x).flatten(0, -2).float(),
            target.flatten(),
            ignore_index=PAD_ID,
            label_smoothing=label_smoothing,
            reduction="sum",
        )

    def training(self) -> AbstractContextManager:
        """The context a training batch's forward and backward run in."""
        if self.precision != "fp32":
            return self._low_precision()
        return OneDNNMatmul() if self.gemm == "onednn" else nullcontext()

    @contextmanager
    def _low_precision(self) -> Iterator[None]:
        with autocast(self.precision, torch.device(self.device_type)):
            self._casts = {}
            try:
                yield
            finally:
                self._casts = None

    def unit(self, work: float) -> AbstractContextManager:
        """The context one decoding batch of `work` (source tokens × beam) runs in."""
        return self.tuner.unit(work) if self.tuner is not None else nullcontext()

    def as_dict(self) -> dict:
        """The choices, as a checkpoint records them (`from_dict` reads them back)."""
        names = ("rnn_path", "rnn_decode", "logits_path", "gemm", "loss_chunk", "dropout_path")
        return {k: getattr(self, k) for k in names}

    @classmethod
    def from_dict(cls, choices: dict) -> Kernels:
        kept = cls(**{k: choices[k] for k in ("rnn_path", "logits_path", "gemm", "loss_chunk")})
        kept.rnn_decode = choices.get("rnn_decode", "")  # recorded before it was measured: ""
        kept.dropout_path = choices.get("dropout_path", "plain")  # recorded before it existed
        return kept

    def describe(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.as_dict().items())


def _needs_grad(x: Tensor, weight: Tensor) -> bool:
    return torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)


def select(
    name: str,
    device: torch.device,
    output: nn.Linear,
    loss_chunk: int = 0,
    training: bool = False,
    recorded: dict | None = None,
    precision: str = "fp32",
    encoder: nn.RNNBase | None = None,
) -> tuple[Kernels, str]:
    """The kernels `name` (a CHOICES value, config key `kernels`) means on this device, and a
    line saying what was measured. output: the model's output layer, whose sizes the probes
    time. training: whether the process trains (the caller passes False under torchrun:
    DDP's all-reduce would pass through oneDNN's dispatch mode, never measured there).
    recorded: an earlier choice (`Kernels.as_dict`, a resumed run's checkpoint holds one),
    kept for auto: measuring again could pick another way, rounding differently.
    precision: training's, `train.precision` (fp32 | bf16 | fp16; nmt.kernels.precision),
    fp32 where the device lacks it; bf16 and fp16 multiply through torch's own autocast.
    encoder: the model's encoder RNN, whose shape auto times without autograd (rnn_decode).
    """
    if name not in CHOICES:
        raise ConfigError(f"kernels={name!r} is not one of: {', '.join(CHOICES)}")
    precision = resolve_precision(precision, device)
    # under autocast training multiplies in torch's own low precision: its fp32 products
    # are neither used nor worth timing (oneDNN's would undo autocast's)
    fp32 = precision == "fp32"
    chosen, measured = _select(name, device, output, loss_chunk, training, recorded, fp32)
    if name == "auto" and recorded is None and encoder is not None and device.type == "cpu":
        path, times = probe.fastest_encoder(
            *(encoder.mode, encoder.input_size, encoder.hidden_size, encoder.num_layers),
            *(encoder.bidirectional, torch.get_num_threads()),
        )
        chosen.rnn_decode = "packed" if path == "packed" else ""
        measured += f"; encoder without autograd ms {times}" if times else ""
    chosen.precision, chosen.device_type = precision, device.type
    if not fp32:
        chosen.gemm = "blas"
        measured += f"; training's products in {precision} autocast"
    if precision == "bf16" and device.type == "cpu" and training:
        measured += bf16_check(output.in_features, "train.precision")
    return chosen, measured


def bf16_check(hidden: int, key: str) -> str:
    """On the CPU, times a model of this hidden size's products in fp32 and bf16
    (`probe.bf16_products`) and warns when bf16 is not the faster; bf16 stays (the user chose
    its numerics). key: the config key that asked for bf16. The times, for select's line."""
    times = probe.bf16_products(hidden, torch.get_num_threads())
    if times and times["bf16"] >= times["fp32"]:
        log.warning(
            "%s=bf16: this CPU multiplies bf16 no faster than fp32 (the model's products "
            "%.1f ms in bf16, %.1f ms in fp32; AVX512-BF16 without AMX can be slower), so "
            "bf16 runs slower here; %s=fp32 is the faster setting",
            key,
            times["bf16"],
            times["fp32"],
            key,
        )
    return f"; products ms {times}" if times else ""


def _select(
    name: str,
    device: torch.device,
    output: nn.Linear,
    loss_chunk: int,
    training: bool,
    recorded: dict | None,
    fp32: bool,
) -> tuple[Kernels, str]:
    """select's choice of paths, before the precision; fp32: whether training's products
    are fp32 (else they are autocast's, and not timed)."""
    if name == "auto" and recorded is not None:
        return Kernels.from_dict({**recorded, "loss_chunk": loss_chunk}), "auto: as recorded"
    if name == "plain":
        return Kernels(), "plain torch"
    if device.type != "cpu":  # cuDNN runs the packed batch; no CPU path applies
        return Kernels(loss_chunk=loss_chunk), f"{device.type}: torch's own"
    if training:
        cap_caches()  # before oneDNN's first use, which the probes may be
    threads, hidden, vocab = torch.get_num_threads(), output.in_features, output.out_features
    if name == "blas":
        logits, gemm, measured = "blocked", "blas", "torch's BLAS, no oneDNN"
    elif name == "onednn":
        if not (onednn_available() and (not training or onednn_matmul_available())):
            raise ConfigError(
                "kernels=onednn: this torch build has no oneDNN linear that agrees with "
                "torch's own; use kernels=auto or kernels=blas"
            )
        logits, gemm, measured = "onednn", "onednn" if training else "blas", "oneDNN as asked"
    else:
        logits, times = probe.fastest_logits(hidden, vocab, threads)
        measured = f"output layer ms {times}"
        gemm = "blas"
        if training and fp32:
            gemm, times = probe.fastest_gemm(hidden, threads)
            measured += f"; training products ms {times}"
    chosen = Kernels("by_direction", logits, gemm, loss_chunk)
    if training:
        chosen.dropout_path, times = probe.fastest_dropout(hidden, threads)
        measured += f"; dropout ms {times}" if times else ""
    return chosen, f"{name}: {measured}"
