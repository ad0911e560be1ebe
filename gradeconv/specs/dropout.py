"""(to be written) the dropout layer specs."""
from __future__ import annotations

from gradeconv.specs.model import Layer

LAYERS: tuple[Layer, ...] = ()
