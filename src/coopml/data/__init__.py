"""Parties, bundled datasets, partitioners and adversarial helpers."""
