"""Data stage: read and validate parallel text, turn it into subword ids, batch it.

corpus.py reads files (plain, .gz, .xz, TSV), tokenizer.py wraps SentencePiece, prepare.py
writes a corpus once as token arrays (nmt-prepare) that prepared.py maps for training,
batching.py collates padded tensors and groups examples into token-budget batches, and
stream.py reads and writes translation's input and output a buffer at a time.
"""
