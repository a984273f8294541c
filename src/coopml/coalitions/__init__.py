"""Cooperative games, value tables and solution concepts."""
