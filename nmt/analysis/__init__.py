"""Error analysis: why a translation missed its reference (search, model or objective).

- classify.py: the four classes and the order of their checks;
- compare.py: decode the test set, score references with the same scorer, trace the beam;
- exact.py: depth-first exact search for the mode of log P (Stahlberg & Byrne 2019);
- sweep.py: beam width x alpha sweep and alpha calibration;
- records.py: the typed sentence records and summary the files are written from;
- report.py: sentences.jsonl, summary.json and the report page (Markdown and HTML).
"""
