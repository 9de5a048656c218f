"""int8 dynamic quantisation for CPU decoding: weights stored as int8, each batch's inputs
quantised on the fly (torch.ao's dynamic quantisation, fbgemm/oneDNN int8 products).

Decoding spends most of its time in the output layer (Hd × V per hypothesis per step) and
the RNNs; their int8 products run 2–4× the fp32 rate on CPUs with VNNI/AMX. The cost is
precision: per-channel int8 weights for the linear layers, per-tensor for the RNNs, the
BLEU lost measured in bench/README.md. Each batch's inputs get their own scale, so a
sentence's log P depends on the batch it is in: fine for translating, not for the exact
comparisons of error analysis (which refuses it). Training never uses it.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn
from torch.ao.quantization import (
    default_dynamic_qconfig,
    per_channel_dynamic_qconfig,
    quantize_dynamic,
)


def int8_copy(model: nn.Module, names: list[str]) -> nn.Module:
    """A deep copy of model (in eval mode) whose submodules `names` (nn.Linear, nn.GRU,
    nn.LSTM, nn.RNN) hold int8 weights; the model itself is left as it is."""
    modules = dict(model.named_modules())
    spec = {
        name: per_channel_dynamic_qconfig
        if isinstance(modules[name], nn.Linear)
        else default_dynamic_qconfig
        for name in names
    }
    with warnings.catch_warnings():  # torch ≥ 2.10 deprecates torch.ao for torchao
        warnings.simplefilter("ignore", (DeprecationWarning, UserWarning))
        return quantize_dynamic(copy.deepcopy(model).eval(), spec, dtype=torch.qint8, inplace=True)
