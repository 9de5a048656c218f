"""Data stage: read and validate parallel text, turn it into subword ids, batch it.

corpus.py reads files (plain, .gz, .xz, TSV), tokenizer.py wraps SentencePiece and
batching.py collates padded tensors and groups examples into token-budget batches.
"""
