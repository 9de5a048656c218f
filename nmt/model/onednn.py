"""torch's fp32 matrix products on the CPU through oneDNN instead of MKL.

torch's CPU matmul calls MKL, and MKL on AMD processors runs its AVX2 kernels: on the
2-core AMD EPYC of bench/README.md, `torch.mm` reaches about 230 GFLOP/s where oneDNN,
which torch also ships, reaches 440-520 in fp32 at every shape of our models
(`bench/flops.py` measures both). Two ways in, both fp32 like MKL, so results differ only by float rounding:

- `OneDNNMatmul`, for training: while active, the matrix products torch runs on this
  thread (F.linear, the CPU RNN kernels' steps, and autograd's backward of both) go to
  oneDNN with the operands as they lie in memory (no packing: a plain weight ran 5-10%
  slower than a packed one, still twice MKL's rate). The trainer wraps each batch's
  forward and backward in it (a Python dispatch mode: every op of the batch passes
  through it, about 4% of a step).
- `PackedLinear`, for decoding: one weight reordered once into oneDNN's layout and kept
  until it changes: any torch optimiser's step (counted by a global hook, since fused
  optimisers such as Adam(fused=True) leave the version counter alone) or an in-place
  change such as `load_state_dict` (which bumps the tensor's version) makes the next call
  pack it again. A weight changed through `.data` is not seen: call `clear()`. The decoder
  uses it for the output layer (`AttentionDecoder.logits`) where nothing needs gradients.

The environment setting NMT_ONEDNN=0 turns both off (then everything runs in MKL).

Memory: oneDNN builds a kernel for every operand shape and keeps it (about 1 MB each) in
two caches, oneDNN's and torch's (ideep), of 1024 entries each. Training meets about 20 new
shapes a batch: the trainer caps both (`cap_caches`; peak RSS 1212 MB against 1558
uncapped on the comparison model, 1124 in MKL). A beam's row count changes every step:
`PackedLinear` pads rows to a multiple of ROWS. Measured on that machine
(bench/README.md): training 1.4x faster side by side; beam 5 about 1.3x faster with the output layer
packed; the decoder's other maps stay with MKL (the attention query and the combine layer
bought nothing measurable for 20-70 MB more peak memory, the decoder RNN's two GEMMs 11%
for 50 MB, the once-per-batch keys and values 2-3% for 20 MB).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from functools import cache

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.optim.optimizer import register_optimizer_step_post_hook
from torch.utils._python_dispatch import TorchDispatchMode

# PackedLinear pads rows to a multiple of this: a beam's row count changes every step
ROWS = 16
# Kernels (one per operand shape) each of oneDNN's two caches keeps; see the module notes
CACHE_CAPACITY = 16

_aten = torch.ops.aten
_MATMULS = (_aten.mm.default, _aten.addmm.default, _aten.addmm_.default)

_steps = [0]  # torch optimiser steps taken in this process


def _count_step(optimizer: torch.optim.Optimizer, args: tuple, kwargs: dict) -> None:
    _steps[0] += 1


register_optimizer_step_post_hook(_count_step)


@cache
def onednn_available() -> bool:
    """Whether this torch build has oneDNN's packed linear and it agrees with F.linear."""
    if os.environ.get("NMT_ONEDNN", "1") == "0" or not torch.backends.mkldnn.is_available():
        return False
    return _agrees(plain=False)


@cache
def onednn_matmul_available() -> bool:
    """Whether oneDNN's linear also takes plain weights and operands stored transposed, as
    `OneDNNMatmul` gives them, and agrees with F.linear. A probe of its own, run only
    where training uses it."""
    return onednn_available() and _agrees(plain=True)


def _agrees(plain: bool) -> bool:
    """oneDNN's linear on a packed (plain=False) or plain weight gives F.linear's result."""
    try:
        # fixed values, not torch.randn: the probe must not move the global random stream
        x, w, b = (
            torch.linspace(-1, 1, 24).view(3, 8),
            torch.linspace(1, -2, 40).view(5, 8),
            torch.ones(5),
        )
        want = F.linear(x, w, b)
        with torch.inference_mode():
            if plain:
                got = [
                    _linear(x, w, b),
                    _linear(x, w.t().contiguous().t(), b),  # weight stored transposed
                    _linear(x.t().contiguous().t(), w, b),  # input stored transposed
                ]
            else:
                got = [_linear(x, torch.ops.mkldnn._reorder_linear_weight(w), b)]
        return all(torch.allclose(y, want, atol=1e-5) for y in got)
    except (AttributeError, RuntimeError, NotImplementedError):
        return False


def cap_caches() -> None:
    """Cap oneDNN's two kernel caches at CACHE_CAPACITY entries each, unless the environment
    sets them. Takes effect only before oneDNN's first use in the process (it reads them once).

    `training_matmul` calls it; decoding pads its rows instead.
    """
    for name in ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY"):
        os.environ.setdefault(name, str(CACHE_CAPACITY))


def training_matmul(enabled: bool = True) -> Callable[[], AbstractContextManager]:
    """What a training batch's forward and backward run inside: `OneDNNMatmul` where
    oneDNN takes plain operands (caches capped first, before the probe: oneDNN's first
    use), else nothing. enabled=False: nothing, and oneDNN is left untouched."""
    if not enabled:
        return nullcontext
    cap_caches()
    return OneDNNMatmul if onednn_matmul_available() else nullcontext


def _linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """oneDNN's x·weightᵀ + bias: x (M, In), weight (Out, In) plain or packed → (M, Out)."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


def _dense(t: Tensor) -> bool:
    """Whether a matrix is stored row- or column-major without gaps (oneDNN's fast layouts:
    a column slice of a wider matrix sends it to a reference kernel, 1000x slower)."""
    rows, cols = t.shape
    return t.stride() in ((cols, 1), (1, rows))


class OneDNNMatmul(TorchDispatchMode):
    """While active, this thread's fp32 CPU matrix products run in oneDNN.

    Takes aten's mm, addmm (a bias row, unscaled) and addmm_ (unscaled): what F.linear,
    torch's CPU GRU / LSTM / RNN kernels and the backward of both call. Anything else,
    including products of other dtypes or devices and operands that are not dense, runs as
    it would have. Use only where `onednn_matmul_available()` (`training_matmul` checks).

        with OneDNNMatmul():
            loss = model(batch)
            loss.backward()
    """

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        if func in _MATMULS and not kwargs:  # beta or alpha given: a scaled product
            out = _product(func, *args)
            if out is not None:
                return out
        return func(*args, **(kwargs or {}))


def _product(func: object, *args: Tensor) -> Tensor | None:
    """oneDNN's result of mm(a, b), addmm(c, a, b) or addmm_(c, a, b); None where it does
    not apply. a: (M, K), b: (K, N), c: (N,) for addmm, (M, N) for addmm_."""
    a, b = args[-2:]
    if not (
        all(t.dtype == torch.float32 and t.device.type == "cpu" for t in args)
        and a.numel()
        and b.numel()
        and _dense(a)
        and _dense(b)
    ):
        return None
    if func is _aten.mm.default:
        return _linear(a, b.t(), None)
    c = args[0]
    if func is _aten.addmm.default:
        return _linear(a, b.t(), c) if c.shape == (b.size(1),) else None
    return c.add_(_linear(a, b.t(), None))  # addmm_


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
        out = _linear(rows, hit[2], bias)
        return out[:m].view(*x.shape[:-1], out.size(-1))

    def clear(self) -> None:
        """Drop every packed copy (after changing a weight in a way no counter sees)."""
        self._packs.clear()

    def __deepcopy__(self, memo: dict) -> PackedLinear:
        return PackedLinear()  # oneDNN's packed tensors cannot be copied; they are rebuilt

    def __getstate__(self) -> dict:
        return {"_packs": {}}
