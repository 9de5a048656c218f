"""How the model's heavy operations are computed: torch as written, or a faster way to the same.

`nmt/model/` writes the maths once and calls four operations through the `Kernels` it holds
(`Seq2Seq.use`); the training loss calls the fourth:

- `rnn(module, x, lengths)`: a stacked, maybe bidirectional torch RNN over padded inputs;
- `linear(layer, x)`: the output layer;
- `loss(layer, x, target, label_smoothing)`: the summed cross-entropy of the output layer;
- `training()`: the context one training batch's forward and backward run in.

`Kernels()` is the plain path: torch's modules over a packed batch, the output layer in one
call, whole-batch logits for the loss. `select` gives the fast paths for the machine it
runs on; each computes the same up to float rounding (tests/kernels/ holds them equal to the
plain path, gradients included):

- rnn "by_direction" (CPU): each direction of each layer unpacked (`nmt.kernels.cpu`);
- logits "blocked" or "onednn" (CPU, no autograd): the output layer a block of vocabulary
  columns at a time, or through oneDNN on a packed weight (`nmt.kernels.onednn`);
- gemm "onednn" (CPU training, one process): every product of a batch through oneDNN;
- loss_chunk > 0: the output layer fused with the loss, chunk rows at a time
  (`nmt.kernels.loss`): logits never held for a whole batch.

Which library multiplies faster is measured at start-up (`nmt.kernels.probe`), never
assumed from the processor's vendor. torch-private APIs are used only in this package.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from nmt import PAD_ID
from nmt.config import ALLOWED
from nmt.errors import ConfigError
from nmt.kernels import probe
from nmt.kernels.cpu import blocked_linear, rnn_by_direction
from nmt.kernels.loss import linear_cross_entropy
from nmt.kernels.onednn import (
    OneDNNMatmul,
    PackedLinear,
    cap_caches,
    onednn_available,
    onednn_matmul_available,
)

CHOICES = ALLOWED["kernels"]  # auto | plain | blas | onednn: the `kernels` config key


@dataclass
class Kernels:
    """The way each heavy operation is computed; the defaults are the plain path."""

    rnn_path: str = "packed"  # packed (torch over a packed batch) | by_direction (CPU)
    logits_path: str = "plain"  # without autograd on the CPU: plain | blocked | onednn
    gemm: str = "blas"  # training's products on the CPU: blas (torch's own) | onednn
    loss_chunk: int = 0  # > 0: output layer fused with the loss, this many rows a chunk
    _packed: PackedLinear = field(default_factory=PackedLinear, repr=False, compare=False)

    def rnn(self, rnn: nn.RNNBase, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Run a batch-first RNN over the real tokens only, never over padding.

        x: (B, S, I), lengths: (B,) ≥ 1 → states (B, S, D·H), zero at padding, and final
        (B, D·H): the last layer's final hidden state of each direction, concatenated.
        """
        if self.rnn_path == "by_direction" and x.device.type == "cpu":
            return rnn_by_direction(rnn, x, lengths)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, hidden = rnn(packed)
        states, _ = pad_packed_sequence(out, batch_first=True, total_length=x.size(1))
        if isinstance(hidden, tuple):  # LSTM: (h, c)
            hidden = hidden[0]
        directions = 2 if rnn.bidirectional else 1  # hidden: (layers·D, B, H)
        return states, torch.cat(list(hidden[-directions:]), dim=-1)

    def linear(self, layer: nn.Linear, x: Tensor) -> Tensor:
        """layer(x): x (..., In) → (..., Out)."""
        if x.device.type == "cpu" and not _needs_grad(x, layer.weight):
            if self.logits_path == "onednn":
                return self._packed(x, layer.weight, layer.bias)
            if self.logits_path == "blocked":
                out = blocked_linear(x.reshape(-1, x.size(-1)), layer.weight, layer.bias)
                return out.view(*x.shape[:-1], -1)
        return layer(x)

    def loss(self, layer: nn.Linear, x: Tensor, target: Tensor, label_smoothing: float) -> Tensor:
        """Summed token cross-entropy of layer(x) against target, PAD_ID never counted.

        x: (..., H) the output layer's inputs, target: (...) ids → a 0-dim float32 tensor.
        """
        if self.loss_chunk:
            return linear_cross_entropy(
                x, layer.weight, layer.bias, target, label_smoothing, self.loss_chunk
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
        return OneDNNMatmul() if self.gemm == "onednn" else nullcontext()

    def as_dict(self) -> dict:
        """The choices, as a checkpoint records them (`from_dict` reads them back)."""
        out = asdict(self)
        out.pop("_packed")
        return out

    @classmethod
    def from_dict(cls, choices: dict) -> Kernels:
        return cls(**{k: choices[k] for k in ("rnn_path", "logits_path", "gemm", "loss_chunk")})

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
) -> tuple[Kernels, str]:
    """The kernels `name` (a CHOICES value, config key `kernels`) means on this device, and a
    line saying what was measured. output: the model's output layer, whose sizes the probes
    time. training: whether the process trains (the caller passes False under torchrun:
    DDP's all-reduce would pass through oneDNN's dispatch mode, never measured there).
    recorded: an earlier choice (`Kernels.as_dict`, a resumed run's checkpoint holds one),
    kept for auto: measuring again could pick another way, rounding differently.
    """
    if name not in CHOICES:
        raise ConfigError(f"kernels={name!r} is not one of: {', '.join(CHOICES)}")
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
        if training:
            gemm, times = probe.fastest_gemm(hidden, threads)
            measured += f"; training products ms {times}"
    chosen = Kernels("by_direction", logits, gemm, loss_chunk)
    return chosen, f"{name}: {measured}"
