"""coopml: the economics of collaborative machine learning.

Subpackages: :mod:`coopml.data` (parties and datasets), :mod:`coopml.learning`
(coalition utilities), :mod:`coopml.coalitions` (cooperative games and their solution
concepts), :mod:`coopml.plots` and :mod:`coopml.cli`.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
