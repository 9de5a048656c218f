"""nmt: recurrent neural machine translation with attention.

Stages, with dependencies pointing one way:
config → data → model (+ kernels) → search → train | evaluate | analysis → translator → cli.
Nothing imports cli.

`from nmt import Translator` (and its result types) is the Python API: loaded on first use
(PEP 562), so `import nmt` stays light and does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

# Special token ids shared by every SentencePiece model nmt trains (nmt/data/tokenizer.py)
# and by the model, which knows token ids, not files.
PAD_ID = 0
UNK_ID = 1
BOS_ID = 2
EOS_ID = 3

# names re-exported from nmt.translator, imported when first asked for
_API = ("Translator", "Translation", "PairScore", "Attention", "SentenceAnalysis")
__all__ = [
    "BOS_ID",
    "EOS_ID",
    "PAD_ID",
    "UNK_ID",
    "Attention",
    "PairScore",
    "SentenceAnalysis",
    "Translation",
    "Translator",
    "__version__",
]

if TYPE_CHECKING:
    from nmt.translator import Attention, PairScore, SentenceAnalysis, Translation, Translator


def __getattr__(name: str) -> object:
    if name in _API:
        import nmt.translator  # the one import upwards: the API, on demand

        return getattr(nmt.translator, name)
    raise AttributeError(f"module 'nmt' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
