"""Options a module gives a module-scoped fixture through a marker of its own."""

from __future__ import annotations

import pytest


def module_options(request: pytest.FixtureRequest, marker: str) -> dict[str, object]:
    """The keyword arguments of ``marker`` on the requesting module (``pytestmark``), or
    none. Module-scoped fixtures see module markers only, so a marker on one test would be
    ignored: that is refused."""
    found = request.node.get_closest_marker(marker)
    if found is not None and found.args:
        raise TypeError(f"pytest.mark.{marker} takes keyword arguments only")
    return dict(found.kwargs) if found is not None else {}
