"""Error analysis: why a translation missed its reference (search, model or objective).

- classify.py: the four classes and the order of their checks;
- compare.py: decode the test set, score references with the same scorer, trace the beam;
- exact.py: depth-first exact search for the mode of log P (Stahlberg & Byrne 2019);
- sweep.py: beam width x alpha sweep and alpha calibration;
- report.py: per-sentence JSONL, summary JSON, Markdown and HTML report.
"""
