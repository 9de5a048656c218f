"""Hydra configs, installed as the package nmt.conf in a wheel (see nmt/resources.py)."""
