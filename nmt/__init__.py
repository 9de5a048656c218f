"""nmt: recurrent neural machine translation with attention.

Stages, with dependencies pointing one way:
config → data → model (+ kernels) → search → train | evaluate | analysis → translator → cli.
Nothing imports cli.
"""

__version__ = "0.1.0"

# Special token ids shared by every SentencePiece model nmt trains (nmt/data/tokenizer.py)
# and by the model, which knows token ids, not files.
PAD_ID = 0
UNK_ID = 1
BOS_ID = 2
EOS_ID = 3
