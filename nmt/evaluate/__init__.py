"""Metrics (sacrebleu) and reports."""
