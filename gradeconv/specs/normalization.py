"""The normalization layers: batchnorm (two backwards), layernorm, spatial batchnorm and spatial groupnorm.

Batchnorm's bn_param carries the running averages: the engine reads
bn_param['running_mean'] and bn_param['running_var'] back after the call and
compares them with the reference's. Modes, eps and momentum are options drawn
among a few values, so a value read from a constant instead of the parameter
dict shows; option defaults leaves eps and momentum out of the dict, as the
course's notebook does, so a default of the student's own shows too.

Group norm's gamma and beta have shape (1, C, 1, 1) as in the course, or (C,)
with the option affine_shape: vector. The channel count is derived (C = G * C/G)
so G always divides C and no case is filtered; the (C,) shape is given by the
arrays' domain, which reshapes the (1, C, 1, 1) values it draws.

Every known mistake is a formula evaluated on the failing case: a failure is
explained only when the student's output equals it.
"""
from __future__ import annotations

import warnings

import numpy as np

from gradeconv.specs.domains import Uniform
from gradeconv.specs.model import Array, Function, Layer, Mistake, Option, Param, Restriction, Var, entry_name
from reference import layers

MODES = Option(("train", "test"), ("train", "test"))
EPS = Option((1e-5, 1e-3))
MOMENTUM = Option((0.9, 0.8))
RUNNING = ("running_mean", "running_var")
#: the course's defaults (bn_param.get('eps', 1e-5), bn_param.get('momentum', 0.9)), used when a case
#: leaves the entries out of the parameter dict (option defaults: true)
COURSE_DEFAULTS = {"eps": 1e-5, "momentum": 0.9}
DEFAULTS = Option(False, (False, True), flag=True)


def _course_defaults(*names: str):
    """derive: a case that leaves these entries out holds the course's defaults in their variables."""
    def derive(variables: dict) -> dict:
        return {name: COURSE_DEFAULTS[name] for name in names} if variables.get("defaults") else {}
    return derive


class NotApplicable(Exception):
    """A mistake's formula does not apply to this case (another mode, the default value)."""


def _applicable(compute):
    """The formula's value, or an empty array (no output has that shape) where it does not apply."""
    def guarded(values):
        try:
            return compute(values)
        except NotApplicable:
            return np.empty(0)
    return guarded


# --- formulas, buggy or not, evaluated on a case ----------------------------------------------------

def _normalised(x, axis, eps, ddof=0, eps_outside=False):
    """(x - mean) / std over `axis`, with the variants students write."""
    with np.errstate(all="ignore"), warnings.catch_warnings():  # ddof=1 on one element divides by zero,
        warnings.simplefilter("ignore", RuntimeWarning)  # as the student's code does
        mean = x.mean(axis=axis, keepdims=True)
        var = x.var(axis=axis, ddof=ddof, keepdims=True)
        std = np.sqrt(var) + eps if eps_outside else np.sqrt(var + eps)
        return (x - mean) / std


def _bn_out(x, gamma, beta, variables, running=None, axis=0, ddof=0, eps_outside=False, affine=True, eps=None):
    """Batchnorm's out on x (N, D): batch statistics in train mode, else `running` (mean, var)."""
    eps = variables["eps"] if eps is None else eps
    if variables["mode"] == "train" or running is None:
        x_hat = _normalised(x, axis, eps, ddof, eps_outside)
    else:
        mean, var = running
        x_hat = (x - mean) / (np.sqrt(var) + eps if eps_outside else np.sqrt(var + eps))
    return gamma * x_hat + beta if affine else x_hat


def _flat(x):
    """(N, C, H, W) -> (N*H*W, C), channels last, as spatial batchnorm flattens it."""
    return x.transpose(0, 2, 3, 1).reshape(-1, x.shape[1])


def _unflat(flat, shape):
    n, c, h, w = shape
    return flat.reshape(n, h, w, c).transpose(0, 3, 1, 2)


def _bn_forward(spatial=False, **bug):
    """A forward out mistake: batchnorm (or spatial batchnorm) computed with one bug."""
    @_applicable
    def compute(values):
        x, v = values.inputs["x"], values.variables
        if v["mode"] != "train" and (bug.get("ddof") or "axis" in bug):
            raise NotApplicable
        if bug.get("eps") == v["eps"]:
            raise NotApplicable
        x2 = _flat(x) if spatial else x
        running = (values.inputs["running_mean"], values.inputs["running_var"])
        out = _bn_out(x2, values.inputs["gamma"], values.inputs["beta"], v, running, **bug)
        return _unflat(out, x.shape) if spatial else out
    return compute


def _bn_test_with_batch_statistics(spatial=False):
    @_applicable
    def compute(values):
        if values.variables["mode"] != "test":
            raise NotApplicable
        x = values.inputs["x"]
        x2 = _flat(x) if spatial else x
        out = _bn_out(x2, values.inputs["gamma"], values.inputs["beta"], {**values.variables, "mode": "train"})
        return _unflat(out, x.shape) if spatial else out
    return compute


@_applicable
def _spatial_not_transposed(values):
    """Spatial batchnorm on x.reshape(-1, C): rows mix channels."""
    x, v = values.inputs["x"], values.variables
    if v["mode"] != "train":
        raise NotApplicable
    out = _bn_out(x.reshape(-1, x.shape[1]), values.inputs["gamma"], values.inputs["beta"], v)
    return out.reshape(x.shape)


@_applicable
def _spatial_per_position(values):
    """Spatial batchnorm normalising each (c, h, w) over N only."""
    x, v = values.inputs["x"], values.variables
    if v["mode"] != "train":
        raise NotApplicable
    x_hat = _normalised(x, 0, v["eps"])
    return values.inputs["gamma"].reshape(1, -1, 1, 1) * x_hat + values.inputs["beta"].reshape(1, -1, 1, 1)


def _running(key, spatial=False, swapped=False, unchanged=False, momentum=None, ddof=0):
    """bn_param[key] after a train-mode call written with one bug."""
    @_applicable
    def compute(values):
        old, v = values.inputs[key], values.variables
        if v["mode"] != "train" or momentum == v["momentum"]:
            raise NotApplicable
        if unchanged:
            return old
        x = _flat(values.inputs["x"]) if spatial else values.inputs["x"]
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            batch = x.mean(axis=0) if key == "running_mean" else x.var(axis=0, ddof=ddof)
        m = v["momentum"] if momentum is None else momentum
        return (1 - m) * old + m * batch if swapped else m * old + (1 - m) * batch
    return compute


def _bn_param_name(key):
    return entry_name("bn_param", key)


def _running_mistakes(spatial=False):
    found = []
    for key in RUNNING:
        name = _bn_param_name(key)
        found += [
            Mistake(name, "store the new running averages back: bn_param['running_mean'] = ... and "
                          "bn_param['running_var'] = ... in train mode", _running(key, spatial, unchanged=True),
                    note=" (it still holds the value it was given: the running average was not updated)"),
            Mistake(name, "running = momentum * running + (1 - momentum) * batch statistic: momentum weighs "
                          "the old running average (momentum and 1 - momentum are swapped)",
                    _running(key, spatial, swapped=True)),
            Mistake(name, MOMENTUM_PARAM, _running(key, spatial, momentum=0.9)),
        ]
    found.append(Mistake(_bn_param_name("running_var"), "running_var averages the biased batch variance "
                                                           "(the one used to normalise), not the unbiased one (ddof=1)",
                         _running("running_var", spatial, ddof=1)))
    return tuple(found)


UNBIASED = "use the biased variance (divide by N, np.var's default ddof=0), not the unbiased one (ddof=1)"
EPS_INSIDE = "add eps inside the square root: np.sqrt(var + eps), not np.sqrt(var) + eps"
AFFINE = "scale and shift the normalised values: out = gamma * x_hat + beta"
EPS_PARAM = "read eps from bn_param: bn_param.get('eps', 1e-5), do not fix it at 1e-5"
MOMENTUM_PARAM = "read momentum from bn_param: bn_param.get('momentum', 0.9), do not fix it at 0.9"
DEFAULT_PARAMS = ("without eps or momentum in the parameter dict use the course's defaults: "
                  "bn_param.get('eps', 1e-5) and bn_param.get('momentum', 0.9)")
TEST_MODE = "in test mode normalise with bn_param's running_mean and running_var, not the batch's statistics"


def _bn_forward_mistakes(spatial=False):
    found = (
        Mistake("out", UNBIASED, _bn_forward(spatial, ddof=1)),
        Mistake("out", EPS_INSIDE, _bn_forward(spatial, eps_outside=True)),
        Mistake("out", AFFINE, _bn_forward(spatial, affine=False), note=" (exactly gamma and beta are missing)"),
        Mistake("out", EPS_PARAM, _bn_forward(spatial, eps=1e-5)),
        Mistake("out", TEST_MODE, _bn_test_with_batch_statistics(spatial)),
    )
    if spatial:
        found += (
            Mistake("out", "move the channel axis last before flattening: x.transpose(0, 2, 3, 1).reshape(-1, C), "
                           "not x.reshape(-1, C)", _spatial_not_transposed),
            Mistake("out", "normalise each channel over N, H and W together (axis=(0, 2, 3)), not each position "
                           "over N", _spatial_per_position),
        )
    else:
        found += (Mistake("out", "batchnorm normalises each feature over the batch: take the mean and variance "
                                 "over axis 0, not axis 1", _bn_forward(axis=1)),)
    return found + _running_mistakes(spatial)


# --- backward mistakes -----------------------------------------------------------------------------

def _train_backward_parts(values, spatial=False, axis=0):
    """(dout, x_hat, inv_std, gamma) of a train-mode case, flattened to 2-D for spatial batchnorm."""
    v = values.variables
    if v.get("mode", "train") != "train":
        raise NotApplicable
    x, dout, gamma = values.inputs["x"], values.upstream["dout"], values.inputs["gamma"]
    if spatial:
        x, dout = _flat(x), _flat(dout)
    mean = x.mean(axis=axis, keepdims=True)
    inv_std = 1.0 / np.sqrt(x.var(axis=axis, keepdims=True) + v["eps"])
    return dout, (x - mean) * inv_std, inv_std, gamma


def _dx(kind, spatial=False, axis=0):
    """dx written with terms missing: 'constant' (no mean or var terms), 'no_var', 'no_mean'."""
    @_applicable
    def compute(values):
        dout, x_hat, inv_std, gamma = _train_backward_parts(values, spatial, axis)
        dx_hat = dout * gamma
        if kind == "constant":
            dx = dx_hat * inv_std
        elif kind == "no_var":
            dx = inv_std * (dx_hat - dx_hat.mean(axis=axis, keepdims=True))
        else:
            dx = inv_std * (dx_hat - x_hat * (dx_hat * x_hat).mean(axis=axis, keepdims=True))
        return _unflat(dx, values.inputs["x"].shape) if spatial else dx
    return compute


def _summed(output, how, spatial=False, axis=0):
    """dgamma or dbeta summed the wrong way: 'rows' (over axis 1), 'none' (not summed), 'x' (dout * x)."""
    @_applicable
    def compute(values):
        dout, x_hat, _, _ = _train_backward_parts(values, spatial, axis)
        if how == "x":
            x = _flat(values.inputs["x"]) if spatial else values.inputs["x"]
            return (dout * x).sum(axis=0)
        term = dout * x_hat if output == "dgamma" else dout
        if spatial:  # summed over N only: one value per (c, h, w)
            return _unflat(term, values.inputs["x"].shape).sum(axis=0)
        return term.sum(axis=1) if how == "rows" else term
    return compute


SUM_BATCH = "sum dgamma and dbeta over the batch (axis 0): they have gamma's shape (D,)"
DX_TERMS = {"constant": "x_hat depends on x also through the batch mean and variance: dx needs their terms too",
            "no_var": "the batch variance depends on x too: dx is missing the term through var",
            "no_mean": "the batch mean depends on x too: dx is missing the term through mean"}
DGAMMA_XHAT = "dgamma = sum(dout * x_hat): use the normalised input, not x"


def _bn_backward_mistakes(spatial=False):
    found = tuple(Mistake("dx", hint, _dx(kind, spatial)) for kind, hint in DX_TERMS.items())
    found += (Mistake("dgamma", DGAMMA_XHAT, _summed("dgamma", "x", spatial)),)
    if spatial:
        hint = "sum dgamma and dbeta over N, H and W (axis=(0, 2, 3)): they have shape (C,)"
        return found + tuple(Mistake(name, hint, _summed(name, "n", True)) for name in ("dgamma", "dbeta"))
    return found + tuple(Mistake(name, SUM_BATCH, _summed(name, how))
                         for name in ("dgamma", "dbeta") for how in ("rows", "none"))


def _bn_layer(name, forward, backwards, spatial):
    """Batchnorm or spatial batchnorm: they share bn_param, options and restrictions."""
    d = "c" if spatial else "d"
    x = Array("x", ("n", "c", "h", "w")) if spatial else Array("x", ("n", "d"))
    backward_mistakes = _bn_backward_mistakes(spatial)
    return Layer(
        name=name,
        forward=Function(forward, ("out",), getattr(layers, forward), returns_cache=True,
                         mistakes=_bn_forward_mistakes(spatial)),
        backward=tuple(Function(backward, ("dx", "dgamma", "dbeta"), getattr(layers, backward),
                                gradients={"dx": "x", "dgamma": "gamma", "dbeta": "beta"},
                                mistakes=backward_mistakes) for backward in backwards),
        arguments=(x, Array("gamma", (d,)), Array("beta", (d,)),
                   Param("bn_param", {"mode": Var("mode"), "eps": Var("eps"), "momentum": Var("momentum"),
                                      "running_mean": Array("running_mean", (d,)),
                                      "running_var": Array("running_var", (d,), Uniform(0.5, 2.0))},
                         updated=RUNNING, optional=("eps", "momentum"), omit="defaults")),
        ranges=({"n": (1, 3), "c": (1, 3), "h": (1, 3), "w": (1, 3)} if spatial else {"n": (2, 6), "d": (1, 5)}),
        minimum={} if spatial else {"n": 2},
        options={"mode": MODES, "eps": EPS, "momentum": MOMENTUM, "defaults": DEFAULTS},
        derive=_course_defaults("eps", "momentum"),
        restrictions=(
            Restriction("mode = train", replace={"mode": "test"}),
            Restriction("mode = test", replace={"mode": "train"}),
            # the same words as the mistakes': a hint found both ways is given once
            Restriction("momentum != 0.9", replace={"momentum": 0.9}, hint=MOMENTUM_PARAM),
            Restriction("eps != 1e-5", replace={"eps": 1e-5}, hint=EPS_PARAM),
            Restriction("bn_param leaves out eps and momentum", replace={"defaults": False}, hint=DEFAULT_PARAMS),
        ),
    )


BATCHNORM = _bn_layer("batchnorm", "batchnorm_forward", ("batchnorm_backward", "batchnorm_backward_alt"), False)
SPATIAL_BATCHNORM = _bn_layer("spatial_batchnorm", "spatial_batchnorm_forward", ("spatial_batchnorm_backward",),
                              True)


# --- layernorm -------------------------------------------------------------------------------------

def _ln_forward(axis=1, **bug):
    def compute(values):
        x_hat = _normalised(values.inputs["x"], axis, values.variables["eps"], **bug)
        return values.inputs["gamma"] * x_hat + values.inputs["beta"]
    return compute


def _ln_without_affine(values):
    return _normalised(values.inputs["x"], 1, values.variables["eps"])


@_applicable
def _ln_dx_batch_axis(values):
    """Layernorm's dx with the sums of batchnorm's formula (over the batch axis 0)."""
    dout, x_hat, inv_std, gamma = _train_backward_parts(values, axis=1)
    dx_hat = dout * gamma
    return inv_std * (dx_hat - dx_hat.mean(axis=0) - x_hat * (dx_hat * x_hat).mean(axis=0))


LAYERNORM = Layer(
    name="layernorm",
    forward=Function("layernorm_forward", ("out",), layers.layernorm_forward, returns_cache=True, mistakes=(
        Mistake("out", "layer norm normalises each sample over its features: take the mean and variance over "
                       "axis 1 (keepdims=True), not over the batch", _ln_forward(axis=0)),
        Mistake("out", UNBIASED, _ln_forward(ddof=1)),
        Mistake("out", EPS_INSIDE, _ln_forward(eps_outside=True)),
        Mistake("out", AFFINE, _ln_without_affine, note=" (exactly gamma and beta are missing)"),
    )),
    backward=(Function("layernorm_backward", ("dx", "dgamma", "dbeta"), layers.layernorm_backward,
                       gradients={"dx": "x", "dgamma": "gamma", "dbeta": "beta"}, mistakes=(
        *(Mistake("dx", hint, _dx(kind, axis=1)) for kind, hint in DX_TERMS.items()),
        Mistake("dx", "in layer norm the sums in dx run over each sample's features (axis 1), not over the batch",
                _ln_dx_batch_axis),
        *(Mistake(name, "dgamma and dbeta still sum over the batch (axis 0) and have shape (D,): if you "
                        "transposed x, transpose back before summing", _summed(name, "rows", axis=1))
          for name in ("dgamma", "dbeta")),
        Mistake("dgamma", DGAMMA_XHAT, _summed("dgamma", "x", axis=1)),
    )),),
    arguments=(Array("x", ("n", "d")), Array("gamma", ("d",)), Array("beta", ("d",)),
               Param("ln_param", {"eps": Var("eps")}, optional=("eps",), omit="defaults")),
    ranges={"n": (1, 4), "d": (2, 6)},
    options={"eps": EPS, "defaults": DEFAULTS},
    derive=_course_defaults("eps"),
    restrictions=(
        Restriction("eps != 1e-5", replace={"eps": 1e-5},
                    hint="read eps from ln_param: ln_param.get('eps', 1e-5)", hint_unless="eps"),
        Restriction("N > 1", replace={"n": (1, 1)}),
        Restriction("ln_param leaves out eps", replace={"defaults": False},
                    hint="without eps in ln_param use the course's default: ln_param.get('eps', 1e-5)"),
    ),
)


# --- spatial groupnorm -----------------------------------------------------------------------------

def _gn_normalised(values, groups_of, eps_outside=False, ddof=0):
    """x normalised per group; groups_of(x) -> (grouped view, axes of one group)."""
    x, v = values.inputs["x"], values.variables
    grouped, axes = groups_of(x, v["groups"])
    return _normalised(grouped, axes, v["eps"], ddof, eps_outside).reshape(x.shape)


def _consecutive(x, g):
    n, c, h, w = x.shape
    return x.reshape(n, g, c // g, h, w), (2, 3, 4)


def _strided(x, g):
    """Channel c in group c % G: x.reshape(N, C // G, G, H, W) grouped over axis 2."""
    n, c, h, w = x.shape
    return x.reshape(n, c // g, g, h, w), (1, 3, 4)


def _gn(groups_of=_consecutive, affine=True, **bug):
    def compute(values):
        x_hat = _gn_normalised(values, groups_of, **bug)
        if not affine:
            return x_hat
        c = x_hat.shape[1]
        return (values.inputs["gamma"].reshape(1, c, 1, 1) * x_hat
                + values.inputs["beta"].reshape(1, c, 1, 1))
    return compute


def _gn_dgamma(name, axes, keep=False, shape=None):
    """dgamma or dbeta summed over `axes`, in `shape` ("vector": (C,), "broadcast": (1, C, 1, 1))."""
    @_applicable
    def compute(values):
        dout = values.upstream["dout"]
        n, _, h, w = dout.shape
        if (0 not in axes and n == 1) or (2 not in axes and h * w == 1):
            raise NotApplicable  # the axes left out have one element: no sign of which were summed
        term = dout * _gn_normalised(values, _consecutive) if name == "dgamma" else dout
        summed = term.sum(axis=axes, keepdims=keep)
        if shape == "vector":
            return summed.reshape(-1)
        return summed.reshape(1, -1, 1, 1) if shape == "broadcast" else summed
    return compute


def _gn_dx_constant(values):
    """dx with each group's mean and variance treated as constants."""
    x, v = values.inputs["x"], values.variables
    grouped, axes = _consecutive(x, v["groups"])
    inv_std = 1.0 / np.sqrt(grouped.var(axis=axes, keepdims=True) + v["eps"])
    c = x.shape[1]
    dx_hat = values.upstream["dout"] * values.inputs["gamma"].reshape(1, c, 1, 1)
    return (dx_hat.reshape(grouped.shape) * inv_std).reshape(x.shape)


GAMMA_SHAPE = ("gamma and beta may have shape (C,): reshape them to (1, C, 1, 1) to use them, and give dgamma "
               "and dbeta gamma's own shape (reshape to gamma.shape)")
SUM_NHW = "sum dgamma and dbeta over N, H and W (axis=(0, 2, 3))"

SPATIAL_GROUPNORM = Layer(
    name="spatial_groupnorm",
    forward=Function("spatial_groupnorm_forward", ("out",), layers.spatial_groupnorm_forward, returns_cache=True,
                     mistakes=(
        Mistake("out", "group consecutive channels: x.reshape(N, G, C // G, H, W) puts channels "
                       "0 .. C/G - 1 in the first group (not every G-th channel)", _gn(_strided)),
        Mistake("out", "normalise each of the G groups separately, not the whole sample at once",
                _gn(lambda x, g: (x, (1, 2, 3)))),
        Mistake("out", "a group holds C // G channels: normalise over them together, not each channel alone",
                _gn(lambda x, g: (x, (2, 3)))),
        Mistake("out", UNBIASED, _gn(ddof=1)),
        Mistake("out", EPS_INSIDE, _gn(eps_outside=True)),
        Mistake("out", AFFINE, _gn(affine=False), note=" (exactly gamma and beta are missing)"),
    )),
    backward=(Function("spatial_groupnorm_backward", ("dx", "dgamma", "dbeta"), layers.spatial_groupnorm_backward,
                       gradients={"dx": "x", "dgamma": "gamma", "dbeta": "beta"}, mistakes=(
        *(Mistake(name, GAMMA_SHAPE, _gn_dgamma(name, (0, 2, 3), shape=shape))
          for name in ("dgamma", "dbeta") for shape in ("vector", "broadcast")),
        *(Mistake(name, SUM_NHW, _gn_dgamma(name, (2, 3), keep=keep))
          for name in ("dgamma", "dbeta") for keep in (False, True)),
        *(Mistake(name, SUM_NHW, _gn_dgamma(name, (0,))) for name in ("dgamma", "dbeta")),
        Mistake("dx", "x_hat depends on x also through each group's mean and variance: dx needs their terms",
                _gn_dx_constant),
    )),),
    arguments=(Array("x", ("n", "c", "h", "w")), Array("gamma", ("affine",)), Array("beta", ("affine",)),
               Var("groups"), Param("gn_param", {"eps": Var("eps")})),
    ranges={"n": (1, 2), "groups": (1, 3), "group_size": (1, 3), "h": (1, 3), "w": (1, 3)},
    options={"eps": EPS, "affine_shape": Option("broadcast", ("broadcast", "vector"))},
    # gamma and beta are (1, C, 1, 1) as in the 2021+ course, or (C,) with affine_shape: vector
    derive=lambda v: {"c": v["groups"] * v["group_size"],
                      "affine": ((v["groups"] * v["group_size"],) if v.get("affine_shape") == "vector"
                                 else (1, v["groups"] * v["group_size"], 1, 1))},
    describe="x shape {x}, G {groups}, gamma and beta of shape {gamma}, eps {eps}",
    restrictions=(
        Restriction("G > 1", replace={"groups": (1, 1)}),
        Restriction("a group has more than one channel (C // G > 1)", replace={"group_size": (1, 1)}),
        Restriction("gamma and beta have shape (C,)", replace={"affine_shape": "broadcast"},
                    hint=GAMMA_SHAPE),  # the mistakes' words: given once when both find it
        Restriction("eps != 1e-5", replace={"eps": 1e-5},
                    hint="read eps from gn_param: gn_param.get('eps', 1e-5)", hint_unless="eps"),
    ),
)

LAYERS = (BATCHNORM, LAYERNORM, SPATIAL_BATCHNORM, SPATIAL_GROUPNORM)
