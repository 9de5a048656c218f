"""The training loss: summed token cross-entropy under teacher forcing."""

from __future__ import annotations

from torch import Tensor, nn

from nmt.data.batching import Batch
from nmt.model import Seq2Seq


def batch_loss(net: nn.Module, model: Seq2Seq, batch: Batch, label_smoothing: float) -> Tensor:
    """Summed token cross-entropy of a batch; padding never counts.

    net: what runs the forward pass, the model itself or DDP around it; model: the Seq2Seq,
    whose kernels compute the output layer with the loss (`nmt.kernels.Kernels.loss`).
    """
    states, _ = net(batch.src, batch.src_len, batch.tgt)  # (B, T, Hd)
    return model.kernels.loss(model.decoder.output, states, batch.tgt, label_smoothing)
