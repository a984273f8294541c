"""Matplotlib figures, one function per figure. Importing this module does not select
a GUI backend; scripts and the CLI render with Agg."""

from coopml.plots.values import plot_values

__all__ = ["plot_values"]
