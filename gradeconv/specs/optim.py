"""The update rules of cs231n/optim.py: sgd, sgd_momentum, rmsprop and adam.

`next_w, config = rule(w, dw, config)`, called step after step with the config
it returned, as the Solver does (see Steps in model.py). A case gives every
config entry, or (defaults = true) only the learning rate, as the Solver's
optim_config does, so the rule must fill in the course's defaults. Gradients
may be tiny (dw_scale 1e-4), where an epsilon in the wrong place shows. The
mistakes are the buggy rules most often seen in students' optim.py.
"""
from __future__ import annotations

import numpy as np

from gradeconv.specs.domains import Normal, Uniform
from gradeconv.specs.model import Array, Function, Layer, Mistake, Option, Param, Restriction, Steps, Var
from reference import optim

DEFAULTS = Option(False, (False, True), flag=True)
SCALE = Option((1.0, 1e-4), (1.0, 1e-4))
RANGES = {"n": (1, 4), "d": (1, 5), "steps": (1, 4)}
MINIMUM = {"t0": 0}
W = Array("w", ("n", "d"))
DW = Array("dw", ("steps", "n", "d"), Normal(scale="dw_scale"))
STATE = "store the updated state in config (config['{key}'] = ...) and return that config: the next call gets it"
FILL = ("fill in the course's defaults for entries the caller leaves out: config.setdefault('{key}', ...); the "
        "Solver passes only the learning rate")

COMMON_RESTRICTIONS = (
    Restriction("more than one step (the state is carried)", replace={"steps": (1, 1)}),
    Restriction("config leaves out entries (defaults)", replace={"defaults": False}),
    Restriction("config gives every entry", replace={"defaults": True}),
    Restriction("tiny gradients (dw about 1e-4)", replace={"dw_scale": 1.0}),
)
#: Adam's t is 1 at every step only in one step from t = 0, where 1 - beta equals 1 - beta**t: a rule that drops
#: the power fails only outside it, which tells it from one that increments t late (the two agree on one step
#: from t = 1)
T_ABOVE_ONE = "t is above 1 (config's t above 0, or more than one step)"
ADAM_RESTRICTIONS = (Restriction(T_ABOVE_ONE, replace={"steps": (1, 1), "t0": (0, 0)}),)
HARD_CODED = ("use the learning rate the caller gives, config['learning_rate'], not a constant: the Solver sets it "
              "(the course's default {rate:g} is only for a config without one)")


def _course_defaults(config: dict, defaults: dict):
    """The case's variables for entries a config leaves out (the course's defaults), and what it gives, in words."""

    def derive(variables: dict) -> dict:
        if variables.get("defaults"):
            return {**defaults, "given": f"config gives only learning_rate {variables['learning_rate']}"}
        named = [f"{key} {variables[entry.name]}" for key, entry in config.items() if isinstance(entry, Var)]
        drawn = [key for key, entry in config.items() if isinstance(entry, Array)]
        return {"given": "config gives " + ", ".join(named + [f"{key} (drawn)" for key in drawn])}

    return derive


def _rule(name: str, reference, config: dict, updated: tuple[str, ...], options: dict, defaults: dict,
          mistakes: tuple[Mistake, ...], conventions: tuple[dict, ...] = (), rate: float = 1e-2,
          restrictions: tuple[Restriction, ...] = ()) -> Layer:
    optional = tuple(key for key in config if key != "learning_rate")
    mistakes += (Mistake("next_w", HARD_CODED.format(rate=rate), _constant_rate(reference, rate)),)
    return Layer(
        name=name,
        forward=Function(name, ("next_w",), reference, mistakes=mistakes),
        arguments=(W, DW, Param("config", config, updated=updated, optional=optional, omit="defaults")),
        ranges={**RANGES, **({"t0": (0, 20)} if "t" in config else {})},
        minimum=MINIMUM,
        options={"learning_rate": Option((1e-2, 3e-2), between=(1e-6, 1.0)), "defaults": DEFAULTS,
                 "dw_scale": SCALE, **options},
        derive=_course_defaults(config, defaults),
        volume=("steps", "n", "d"),
        describe="w shape {w}, {given}, {steps} step(s), dw scale {dw_scale}",
        restrictions=COMMON_RESTRICTIONS + restrictions,
        steps=Steps(count="steps", replaces="w", carried="config", varying=("dw",), conventions=conventions),
    )


# --- buggy rules, each a mistake seen in students' files ---------------------------------------

def _constant_rate(reference, rate: float):
    """The rule with the course's default learning rate written in, whatever the config says."""

    def rule(w, dw, config=None):
        return reference(w, dw, {**(config or {}), "learning_rate": rate})

    return rule


def _momentum_late_velocity(w, dw, config=None):
    """next_w = w + v with the old velocity, then v updated: the update order swapped."""
    config = dict(config or {})
    config.setdefault("learning_rate", 1e-2), config.setdefault("momentum", 0.9)
    v = config.get("velocity", np.zeros_like(w))
    next_w = w + v
    config["velocity"] = config["momentum"] * v - config["learning_rate"] * dw
    return next_w, config


def _momentum_not_stored(w, dw, config=None):
    config = dict(config or {})
    config.setdefault("learning_rate", 1e-2), config.setdefault("momentum", 0.9)
    v = config.get("velocity", np.zeros_like(w))
    v = config["momentum"] * v - config["learning_rate"] * dw
    return w + v, config


def _rmsprop_eps_inside(w, dw, config=None):
    config = dict(config or {})
    for key, value in (("learning_rate", 1e-2), ("decay_rate", 0.99), ("epsilon", 1e-8)):
        config.setdefault(key, value)
    cache = config.get("cache", np.zeros_like(w))
    cache = config["decay_rate"] * cache + (1 - config["decay_rate"]) * dw ** 2
    config["cache"] = cache
    return w - config["learning_rate"] * dw / np.sqrt(cache + config["epsilon"]), config


def _rmsprop_not_squared(magnitude):
    """The cache averaging |dw| (np.abs(dw)) or dw itself (which goes negative: NaN under np.sqrt)."""

    def rule(w, dw, config=None):
        config = dict(config or {})
        for key, value in (("learning_rate", 1e-2), ("decay_rate", 0.99), ("epsilon", 1e-8)):
            config.setdefault(key, value)
        decay = config["decay_rate"]
        cache = decay * config.get("cache", np.zeros_like(w)) + (1 - decay) * magnitude(dw)
        config["cache"] = cache
        return w - config["learning_rate"] * dw / (np.sqrt(cache) + config["epsilon"]), config

    return rule


NOT_SQUARED = "the cache averages squared gradients: decay_rate * cache + (1 - decay_rate) * dw**2"


def _adam(correct_m, correct_v, store_t=True, eps_inside=False, t_after=False):
    """A buggy Adam: corrections given as functions of (beta, t); t stored or not, incremented late."""

    def rule(w, dw, config=None):
        config = dict(config or {})
        for key, value in (("learning_rate", 1e-3), ("beta1", 0.9), ("beta2", 0.999), ("epsilon", 1e-8),
                           ("t", 0)):
            config.setdefault(key, value)
        b1, b2 = config["beta1"], config["beta2"]
        t = config["t"] if t_after else config["t"] + 1
        m = b1 * config.get("m", np.zeros_like(w)) + (1 - b1) * dw
        v = b2 * config.get("v", np.zeros_like(w)) + (1 - b2) * dw ** 2
        with np.errstate(divide="ignore", invalid="ignore"):
            mt, vt = m / correct_m(b1, t), v / correct_v(b2, t)
            step = mt / (np.sqrt(vt + config["epsilon"]) if eps_inside else np.sqrt(vt) + config["epsilon"])
        config["m"], config["v"] = m, v
        if store_t:
            config["t"] = t + 1 if t_after else t
        return w - config["learning_rate"] * step, config

    return rule


def _bias(beta, t):
    return 1 - beta ** t


def _none(beta, t):
    return 1.0


def _no_power(beta, t):
    return 1 - beta


SGD = _rule("sgd", optim.sgd, {"learning_rate": Var("learning_rate")}, (), {}, {}, ())

SGD_MOMENTUM = _rule(
    "sgd_momentum", optim.sgd_momentum,
    {"learning_rate": Var("learning_rate"), "momentum": Var("momentum"), "velocity": Array("velocity", ("n", "d"))},
    ("velocity",), {"momentum": Option((0.9, 0.5), between=(0.0, 1.0))}, {"momentum": 0.9},
    (Mistake("next_w", "update the velocity first, then step with it: v = momentum * v - learning_rate * dw; "
                       "next_w = w + v", _momentum_late_velocity),
     Mistake("next_w", STATE.format(key="velocity"), _momentum_not_stored)),
)

RMSPROP = _rule(
    "rmsprop", optim.rmsprop,
    {"learning_rate": Var("learning_rate"), "decay_rate": Var("decay_rate"), "epsilon": Var("epsilon"),
     "cache": Array("cache", ("n", "d"), Uniform(0.0, 2.0))},
    ("cache",), {"decay_rate": Option((0.99, 0.9), between=(0.0, 1.0)), "epsilon": Option((1e-8,), between=(0, 1))},
    {"decay_rate": 0.99, "epsilon": 1e-8},
    (Mistake("next_w", "epsilon goes outside the square root: dw / (np.sqrt(cache) + epsilon)",
             _rmsprop_eps_inside),
     Mistake("next_w", NOT_SQUARED, _rmsprop_not_squared(np.abs)),
     Mistake("next_w", NOT_SQUARED, _rmsprop_not_squared(lambda dw: dw))),
)

ADAM = _rule(
    "adam", optim.adam,
    {"learning_rate": Var("learning_rate"), "beta1": Var("beta1"), "beta2": Var("beta2"), "epsilon": Var("epsilon"),
     "m": Array("m", ("n", "d")), "v": Array("v", ("n", "d"), Uniform(0.0, 2.0)), "t": Var("t0")},
    ("m", "v", "t"),
    {"beta1": Option((0.9, 0.8), between=(0.0, 1.0)), "beta2": Option((0.999, 0.99), between=(0.0, 1.0)),
     "epsilon": Option((1e-8,), between=(0, 1))},
    {"beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8, "t0": 0},
    (Mistake("next_w", "Adam divides by the bias corrections: mt = m / (1 - beta1**t), vt = v / (1 - beta2**t)",
             _adam(_none, _none)),
     Mistake("next_w", "the bias correction is 1 - beta**t (beta to the power t), not 1 - beta",
             _adam(_no_power, _no_power), needs=T_ABOVE_ONE),
     Mistake("next_w", STATE.format(key="t"), _adam(_bias, _bias, store_t=False)),
     Mistake("next_w", "increment t before the bias correction (t = config['t'] + 1), as the course does",
             _adam(_bias, _bias, t_after=True)),
     Mistake("next_w", "epsilon goes outside the square root: mt / (np.sqrt(vt) + epsilon)",
             _adam(_bias, _bias, eps_inside=True))),
    conventions=({"t": 1},),  # 2016-17's starter code began t at 1 (config.setdefault('t', 1))
    rate=1e-3, restrictions=ADAM_RESTRICTIONS,
)

LAYERS = (SGD, SGD_MOMENTUM, RMSPROP, ADAM)
