"""Plain-data (JSON / TOML) descriptions of a fine-tuning game, validated with pydantic."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from coopml.finetuning.game import FineTuningGame


def parse_game(spec: Mapping[str, Any]) -> FineTuningGame:
    """A game from its plain-data description; see :meth:`FineTuningGame.from_dict`."""
    return FineTuningGame.from_dict(spec)


def load_specialists(
    path: str | Path, *, c1: float | None, revenue: float | None
) -> list[dict[str, Any]]:
    """Read a JSON or TOML file listing specialists (``{"specialists": [...]}`` or a list).

    Entries without ``quadratic`` / ``revenue`` take ``c1`` / ``revenue``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"parameter 'specialists' must name an existing file; got {str(path)!r}"
        )
    text = path.read_text()
    try:
        data: Any = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"could not parse specialists file {str(path)!r}: {exc}") from None
    if isinstance(data, Mapping):
        data = data.get("specialists")
    if not isinstance(data, list) or not data:
        raise ValueError(
            f"specialists file {str(path)!r} must hold a non-empty list 'specialists' of tables"
        )
    out = []
    for entry in data:
        if not isinstance(entry, Mapping):
            raise ValueError(f"each specialist must be a table of numbers; got {entry!r}")
        entry = dict(entry)
        if "quadratic" not in entry and c1 is not None:
            entry["quadratic"] = c1
        if "revenue" not in entry and revenue is not None:
            entry["revenue"] = revenue
        out.append(entry)
    return out


def load_game(
    c0: float,
    *,
    c1: float | None = None,
    revenue: float | None = None,
    specialists: str | Path | None = None,
) -> FineTuningGame:
    """The game described by command-line style options.

    Without ``specialists``: the closed-form game ``FineTuningGame.quadratic(c0, c1,
    revenue)``. With a JSON / TOML file listing specialists (keys ``name``,
    ``quadratic``, ``linear``, ``fixed``, ``higher``, ``revenue``), one specialist per
    entry; entries without ``quadratic`` / ``revenue`` take ``c1`` / ``revenue``.

    Examples
    --------
    >>> load_game(1.0, c1=2.0, revenue=1.0).closed_form
    True
    """
    if specialists is None:
        if c1 is None or revenue is None:
            raise ValueError(
                "parameters 'c1' and 'revenue' are required without a specialists file; "
                f"got c1={c1}, revenue={revenue}"
            )
        return FineTuningGame.quadratic(c0, c1, revenue)
    entries = load_specialists(specialists, c1=c1, revenue=revenue)
    return parse_game({"generalist": {"quadratic": c0}, "specialists": entries})
