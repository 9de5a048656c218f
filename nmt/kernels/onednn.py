"""torch's fp32 matrix products on the CPU through oneDNN, which torch ships beside its BLAS.

Which library is faster depends on the machine, so nothing here assumes: `nmt.kernels.probe`
times both at the model's shapes and `select` picks. Measured so far (bench/README.md, 2
cores each): on an AMD EPYC (Zen 5) torch's MKL ran its AVX2 kernels at ~220 GFLOP/s and
oneDNN at 440-520, training 1.4x faster through oneDNN; on an Intel Xeon with AVX-512 and
AMX, MKL is native and oneDNN trained 0.8x as fast. Two ways in, both fp32, so results differ
from torch's own products only by float rounding:

- `OneDNNMatmul`, for training: while active, the matrix products torch runs on this
  thread (F.linear, the CPU RNN kernels' steps, and autograd's backward of both) go to
  oneDNN with the operands as they lie in memory (no packing: a plain weight ran 5-10%
  slower than a packed one). A Python dispatch mode: every op of the batch passes through
  it, about 4% of a step.
- `PackedLinear`, for decoding: one weight reordered once into oneDNN's layout and kept
  until it changes: any torch optimiser's step (counted by a global hook, registered at the
  first pack, since fused optimisers such as Adam(fused=True) leave the version counter
  alone) or an in-place change such as `load_state_dict` (which bumps the tensor's version)
  makes the next call pack it again. A weight changed through `.data` is not seen: call
  `clear()`.

Memory: oneDNN builds a kernel for every operand shape and keeps it (about 1 MB each) in
two caches, oneDNN's and torch's (ideep), of 1024 entries each. Training meets about 20 new
shapes a batch, so `cap_caches` caps both (peak RSS 1212 MB against 1558 uncapped on the
comparison model); oneDNN reads the capacities from the environment once, at its first use,
which is the only way torch offers to set them. A beam's row count changes every step:
`PackedLinear` pads rows to a multiple of ROWS instead.
"""

from __future__ import annotations

import os
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

_steps = [0]  # torch optimiser steps taken in this process since the first pack
_hook: list = []  # the step counter's hook handle, once registered


def _count_step(optimizer: torch.optim.Optimizer, args: tuple, kwargs: dict) -> None:
    _steps[0] += 1


def _count_steps() -> None:
    """Count every torch optimiser step from now on (what tells `PackedLinear` a weight moved)."""
    if not _hook:
        _hook.append(register_optimizer_step_post_hook(_count_step))


@cache
def onednn_available() -> bool:
    """Whether this torch build has oneDNN's packed linear and it agrees with F.linear."""
    return torch.backends.mkldnn.is_available() and _agrees(plain=False)


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
    sets them. Takes effect only before oneDNN's first use in the process (it reads them once):
    `nmt.kernels.select` calls it before any probe when it selects for training.
    """
    for name in ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY"):
        os.environ.setdefault(name, str(CACHE_CAPACITY))


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
    it would have. Use only where `onednn_matmul_available()` (`nmt.kernels.select` checks).

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
    """F.linear through oneDNN on one weight packed into its layout, packed again when it changes.

    Not a parameter or buffer: checkpoints and `state_dict` never see it, and a copy
    (copy.deepcopy) starts with nothing packed.
    """

    def __init__(self) -> None:
        # (the weight packed, (its version, optimiser steps) then, the packed copy)
        self._pack: tuple[Tensor, tuple[int, int], Tensor] | None = None

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

    def __call__(self, x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
        """F.linear(x, weight, bias): x (..., In), weight (Out, In), bias (Out,) → (..., Out)."""
        if not self.applies(x, weight):
            return F.linear(x, weight, bias)
        _count_steps()
        hit, stamp = self._pack, (weight._version, _steps[0])
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
            hit = self._pack = (weight, stamp, packed)
        rows = x.reshape(-1, x.size(-1))  # (M, In)
        m = rows.size(0)
        if m % ROWS:  # F.pad copies even when it adds nothing: only where rows are missing
            rows = F.pad(rows, (0, 0, 0, -m % ROWS))  # (M rounded up to ROWS, In)
        out = _linear(rows, hit[2], bias)
        return out[:m].view(*x.shape[:-1], out.size(-1))

    @property
    def packed(self) -> bool:
        """Whether a packed copy is held."""
        return self._pack is not None

    def clear(self) -> None:
        """Drop the packed copy (after changing the weight in a way no counter sees)."""
        self._pack = None

    def __deepcopy__(self, memo: dict) -> PackedLinear:
        return PackedLinear()  # oneDNN's packed tensors cannot be copied; they are rebuilt

    def __getstate__(self) -> dict:
        return {"_pack": None}
