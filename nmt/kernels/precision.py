"""The floating-point precision the heavy products run in: fp32, or bf16 / fp16 autocast.

bf16 keeps fp32's exponent range, so it trains without loss scaling; the parameters, the
optimiser's state, the loss and the log-probabilities stay fp32 (torch.autocast casts the
products' inputs, and the kernels below cast what autocast does not see: the RNNs' weights,
the fused output-layer loss). fp16 has a narrow range: CUDA only, with a gradient scaler
(the trainer's). A CPU without bf16 instructions would emulate bf16 far slower than fp32:
there bf16 falls back to fp32 with one warning.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager, nullcontext

import torch

from nmt.errors import ConfigError

log = logging.getLogger(__name__)

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
_warned: set[tuple[str, str]] = set()


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX512-BF16 or AMX; oneDNN asks the CPU)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(name: str, device: torch.device, key: str = "train.precision") -> str:
    """The precision `name` runs in on `device`: itself, or fp32 (with one warning) where the
    device lacks it. `key` names the config key in errors and warnings."""
    if name not in DTYPES:
        raise ConfigError(f"{key}={name!r} is not one of: {', '.join(DTYPES)}")
    if name == "fp16" and device.type != "cuda":
        raise ConfigError(
            f"{key}=fp16 needs a CUDA device (fp16 trains with a gradient scaler there); "
            f"on {device.type} use {key}=bf16 or fp32"
        )
    supported = {
        "cpu": cpu_has_bf16,
        "cuda": lambda: torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
    }.get(device.type, lambda: False)
    if name == "bf16" and not supported():
        if (key, device.type) not in _warned:
            _warned.add((key, device.type))
            log.warning(
                "%s=bf16: this %s has no native bf16 products (AVX512-BF16 or AMX on a CPU), "
                "where bf16 would run slower than fp32; running fp32",
                key,
                device.type.upper(),
            )
        return "fp32"
    return name


def autocast(precision: str, device: torch.device) -> AbstractContextManager:
    """The context the products run in at `precision` (a resolved one) on `device`."""
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[precision])


def autocast_dtype(device_type: str) -> torch.dtype | None:
    """The dtype autocast casts products to on `device_type` now; None when it is off."""
    try:
        on = torch.is_autocast_enabled(device_type)
        return torch.get_autocast_dtype(device_type) if on else None
    except (TypeError, AttributeError):  # torch < 2.4: one call per device type
        if device_type == "cpu":
            on, dtype = torch.is_autocast_cpu_enabled(), torch.get_autocast_cpu_dtype
        else:
            on, dtype = torch.is_autocast_enabled(), torch.get_autocast_gpu_dtype
        return dtype() if on else None
