"""(to be written) the recurrent layer specs."""
from __future__ import annotations

from gradeconv.specs.model import Layer

LAYERS: tuple[Layer, ...] = ()
