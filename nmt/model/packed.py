"""Linear layers through oneDNN's fp32 GEMM on a packed copy of the weight, for decoding.

torch's CPU matmul calls MKL, and MKL on AMD processors runs its AVX2 kernels: on the
2-core AMD EPYC of bench/README.md, `torch.mm` reaches about 220 GFLOP/s where oneDNN, which
torch also ships, reaches 460-510 in fp32 at every decoder shape (`bench/flops.py` measures
both). `PackedLinear` reorders a weight once into oneDNN's layout and keeps it until the
weight changes: any torch optimiser's step (counted by a global hook, since fused optimisers
such as Adam(fused=True) leave the version counter alone) or an in-place change such as
`load_state_dict` (which bumps the tensor's version) makes the next call pack it again. A
weight changed through `.data` is not seen: call `clear()`. The products are fp32, as MKL's,
so outputs differ only by float rounding.

The decoder uses it for the output layer (`AttentionDecoder.logits`) where nothing needs
gradients on a CPU (decoding, scoring, validation); training (autograd), other devices and
dtypes, and the environment setting NMT_ONEDNN=0 take the plain layer. Measured on that
machine (bench/README.md): the output layer is 62% of a decoder step's FLOPs, and beam 5
runs about 1.3x faster. oneDNN costs memory beyond the packed copy (about 1 MB for each
input shape it has seen, not in its primitive cache: capping that changed nothing), so the
other maps stay with MKL: the attention query and the combine layer bought nothing
measurable for 20-70 MB more peak memory, the decoder RNN's two GEMMs (a hand-written step)
11% for 50 MB, the once-per-batch keys and values 2-3% for 20 MB, and the training loss's
GEMMs 1.6x, but the process grew by tens of MB a batch.
"""

from __future__ import annotations

import os
from functools import cache

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.optim.optimizer import register_optimizer_step_post_hook

# Rows are padded to a multiple of this: oneDNN keeps about 1 MB for every input shape it
# has seen (not bounded by its primitive cache), and a beam's row count changes every step.
ROWS = 16

_steps = [0]  # torch optimiser steps taken in this process


def _count_step(optimizer: torch.optim.Optimizer, args: tuple, kwargs: dict) -> None:
    _steps[0] += 1


register_optimizer_step_post_hook(_count_step)


@cache
def onednn_available() -> bool:
    """Whether this torch build has oneDNN's packed linear and it agrees with F.linear."""
    if os.environ.get("NMT_ONEDNN", "1") == "0" or not torch.backends.mkldnn.is_available():
        return False
    try:
        # fixed values, not torch.randn: the probe must not move the global random stream
        x, w, b = (
            torch.linspace(-1, 1, 24).view(3, 8),
            torch.linspace(1, -2, 40).view(5, 8),
            torch.ones(5),
        )
        with torch.inference_mode():
            y = torch.ops.mkldnn._linear_pointwise(
                x, torch.ops.mkldnn._reorder_linear_weight(w), b, "none", [], ""
            )
        return bool(torch.allclose(y, F.linear(x, w, b), atol=1e-5))
    except (AttributeError, RuntimeError, NotImplementedError):
        return False


class PackedLinear:
    """The packed weights of one module's linear maps, each under the name it is called with.

    Not a parameter or buffer: checkpoints and `state_dict` never see it, and a copy of the
    module (copy.deepcopy) starts with none packed.
    """

    def __init__(self) -> None:
        # name → (the weight packed, (its version, optimiser steps) then, the packed copy)
        self._packs: dict[str, tuple[Tensor, tuple[int, int], Tensor]] = {}

    @staticmethod
    def applies(x: Tensor, weight: Tensor) -> bool:
        """Whether x·weightᵀ goes through oneDNN: fp32 on the CPU, no autograd, available."""
        return (
            x.device.type == "cpu"
            and x.dtype == weight.dtype == torch.float32
            and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
            and not weight.is_inference()  # no version counter to tell when it changes
            and onednn_available()
        )

    def __call__(self, name: str, x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
        """F.linear(x, weight, bias): x (..., In), weight (Out, In), bias (Out,) → (..., Out)."""
        if not self.applies(x, weight):
            return F.linear(x, weight, bias)
        hit, stamp = self._packs.get(name), (weight._version, _steps[0])
        # the weight kept in the entry keeps its storage alive: an equal data_ptr is the same
        # memory, not a new tensor allocated where a freed one was
        if (
            hit is None
            or hit[0].data_ptr() != weight.data_ptr()
            or hit[0].stride() != weight.stride()
            or hit[0].shape != weight.shape
            or hit[1] != stamp
        ):
            with torch.inference_mode():
                packed = torch.ops.mkldnn._reorder_linear_weight(weight.contiguous())
            hit = self._packs[name] = (weight, stamp, packed)
        rows = x.reshape(-1, x.size(-1))  # (M, In)
        m = rows.size(0)
        if m % ROWS:  # F.pad copies even when it adds nothing: only where rows are missing
            rows = F.pad(rows, (0, 0, 0, -m % ROWS))  # (M rounded up to ROWS, In)
        out = torch.ops.mkldnn._linear_pointwise(rows, hit[2], bias, "none", [], "")
        return out[:m].view(*x.shape[:-1], out.size(-1))

    def clear(self) -> None:
        """Drop every packed copy (after changing a weight in a way no counter sees)."""
        self._packs.clear()

    def __deepcopy__(self, memo: dict) -> PackedLinear:
        return PackedLinear()  # oneDNN's packed tensors cannot be copied; they are rebuilt

    def __getstate__(self) -> dict:
        return {"_packs": {}}
