"""The graded layers, each described as data (see model.py); the registry the engine looks them up in.

One module per layer family; each exports LAYERS.
"""
from __future__ import annotations

from gradeconv.specs import dropout, fully_connected, losses, lstm, networks, normalization, optim, recurrent
from gradeconv.specs.conv import CONV
from gradeconv.specs.model import Function, Layer
from gradeconv.specs.pool import POOL

LAYERS: tuple[Layer, ...] = (CONV, POOL, *fully_connected.LAYERS, *losses.LAYERS, *normalization.LAYERS,
                             *dropout.LAYERS, *recurrent.LAYERS, *lstm.LAYERS,
                             *optim.LAYERS, *networks.LAYERS)
#: function name -> (its layer, itself)
FUNCTIONS: dict[str, tuple[Layer, Function]] = {
    function.name: (layer, function) for layer in LAYERS for function in layer.functions}


def layer_of(name: str) -> Layer:
    return FUNCTIONS[name][0]


def function(name: str) -> Function:
    return FUNCTIONS[name][1]
