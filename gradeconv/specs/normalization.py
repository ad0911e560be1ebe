"""(to be written) the normalization layer specs."""
from __future__ import annotations

from gradeconv.specs.model import Layer

LAYERS: tuple[Layer, ...] = ()
