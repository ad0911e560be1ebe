"""The recurrent layers of cs231n/rnn_layers.py: vanilla RNN (one step and over time), word embedding,
temporal affine and the masked temporal softmax loss.

The canonical caches (what a backward gets when the student's forward was wrong
for a case) follow the course's usual layout, so a backward written against it
is graded on its own: an RNN step caches (x, prev_h, Wx, Wh, next_h), the RNN
over time the list of its step caches, the word embedding (x, W) and the
temporal affine (x, w, b, out).

The known mistakes recompute the buggy formula from the case's inputs and
upstream gradients, never from a cache.
"""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from gradeconv.specs.domains import Domain, Integers, Normal
from gradeconv.specs.model import REQUIRED, Array, Function, Layer, Mistake, Option, Restriction
from reference import rnn_layers

MODULE = "rnn_layers.py"


# --- canonical caches in the course's layout ---------------------------------------------------------

def _rnn_forward(x, h0, Wx, Wh, b):
    h, (_, _, caches) = rnn_layers.rnn_forward(x, h0, Wx, Wh, b)
    return h, list(caches)


def _rnn_backward(dh, cache):
    steps = list(cache)
    x0, prev_h0 = steps[0][0], steps[0][1]
    x_shape = (x0.shape[0], len(steps), x0.shape[1])
    return rnn_layers.rnn_backward(dh, (x_shape, prev_h0.shape, steps))


def _word_embedding_forward(x, W):
    out, _ = rnn_layers.word_embedding_forward(x, W)
    return out, (x, W)


def _word_embedding_backward(dout, cache):
    x, W = cache
    return rnn_layers.word_embedding_backward(dout, (x, np.shape(W)))


def _temporal_affine_forward(x, w, b):
    out, _ = rnn_layers.temporal_affine_forward(x, w, b)
    return out, (x, w, b, out)


def _temporal_affine_backward(dout, cache):
    x, w, b = cache[:3]
    return rnn_layers.temporal_affine_backward(dout, (x, w, b))


# --- value domains ---------------------------------------------------------------------------------------

class Indices(Domain):
    """Word indices in [0, V); all distinct when the case's `repeats` is "forbidden" (then V >= N*T)."""

    def sample(self, rng, shape, variables):
        count, high = int(np.prod(shape)), int(variables["v"])
        if variables.get("repeats") == "forbidden" and high >= count:
            return rng.permutation(high)[:count].reshape(shape).astype(np.int64)
        return rng.integers(0, high, shape).astype(np.int64)


class Mask(Domain):
    """A boolean mask with at least one True (so a loss never divides 0 by 0); with mask "partial" and two
    or more positions, at least one False too. With mask "full", all True."""

    def sample(self, rng, shape, variables):
        mask = rng.random(shape) < 0.6
        if variables.get("mask") == "full":
            return np.ones(shape, dtype=bool)
        flat = mask.reshape(-1)
        on, off = rng.permutation(flat.size)[:2] if flat.size >= 2 else (0, None)
        flat[on] = True
        if off is not None:
            flat[off] = False
        return flat.reshape(shape)


# --- buggy formulas --------------------------------------------------------------------------------------

STEP_OUTPUTS = ("dx", "dprev_h", "dWx", "dWh", "db")
SEQUENCE_OUTPUTS = ("dx", "dh0", "dWx", "dWh", "db")


def _tanh_grad_correct(h):
    return 1.0 - h**2


def _tanh_grad_linear(h):  # 1 - tanh instead of 1 - tanh**2
    return 1.0 - h


def _tanh_grad_missing(h):
    return np.ones_like(h)


def _step_back(dnext, x, prev_h, Wx, Wh, next_h, derivative=_tanh_grad_correct, dWh_from_next_h=False):
    da = dnext * derivative(next_h)
    return da @ Wx.T, da @ Wh.T, x.T @ da, (next_h if dWh_from_next_h else prev_h).T @ da, da.sum(axis=0)


def _step_output(output, **bug):
    index = STEP_OUTPUTS.index(output)

    def compute(values):
        i = values.inputs
        return _step_back(values.upstream["dnext_h"], i["x"], i["prev_h"], i["Wx"], i["Wh"],
                          values.reference_outputs["next_h"], **bug)[index]
    return compute


def _bptt(values, upstream="both", accumulate=True, **step_bug) -> dict:
    """The RNN backward over time, optionally with a known bug."""
    i = values.inputs
    x, h0, Wx, Wh = i["x"], i["h0"], i["Wx"], i["Wh"]
    h, dh = values.reference_outputs["h"], values.upstream["dh"]
    steps = x.shape[1]
    dx = np.zeros(x.shape)
    dWx, dWh, db = np.zeros(Wx.shape), np.zeros(Wh.shape), np.zeros(Wh.shape[0])
    carried = dh[:, -1] if upstream == "carried" else np.zeros(h0.shape)
    for t in reversed(range(steps)):
        prev_h = h[:, t - 1] if t > 0 else h0
        dnext = {"both": dh[:, t] + carried, "local": dh[:, t], "carried": carried}[upstream]
        dx[:, t], carried, dWx_t, dWh_t, db_t = _step_back(dnext, x[:, t], prev_h, Wx, Wh, h[:, t], **step_bug)
        if accumulate:
            dWx, dWh, db = dWx + dWx_t, dWh + dWh_t, db + db_t
        else:
            dWx, dWh, db = dWx_t, dWh_t, db_t
    return {"dx": dx, "dh0": carried, "dWx": dWx, "dWh": dWh, "db": db}


def _bptt_output(output, **bug):
    return lambda values: _bptt(values, **bug)[output]


def _rnn_sequence(values, bias=True, tanh=True):
    """The RNN forward over time with a bug of its step."""
    i = values.inputs
    prev_h, h = i["h0"], []
    for t in range(i["x"].shape[1]):
        a = i["x"][:, t] @ i["Wx"] + prev_h @ i["Wh"] + (i["b"] if bias else 0.0)
        prev_h = np.tanh(a) if tanh else a
        h.append(prev_h)
    return np.stack(h, axis=1)


def _on_every(outputs, hint, compute_of, note="") -> tuple[Mistake, ...]:
    """One mistake on each output: a bug that changes them all is recognised whichever fails first."""
    return tuple(Mistake(output, hint, compute_of(output), note=note) for output in outputs)


def _rnn_from_h0_every_step(values):
    i = values.inputs
    return np.tanh(np.einsum("ntd,dh->nth", i["x"], i["Wx"]) + (i["h0"] @ i["Wh"])[:, None] + i["b"])


def _rnn_stored_prev_h(values):
    h = values.reference_outputs["h"]
    return np.concatenate([values.inputs["h0"][:, None], h[:, :-1]], axis=1)


def _embedding_assigned(values):
    """dW[x] = dout (or += with fancy indexing, or a loop with =): a repeated index keeps only its last row."""
    x, W = values.inputs["x"], values.inputs["W"]
    dW = np.zeros(W.shape)
    dW[x] = values.upstream["dout"]
    return dW


def _affine_without_bias(values):
    return values.reference_outputs["out"] - values.inputs["b"]


def _affine_dx_flat(values):
    dout, w = values.upstream["dout"], values.inputs["w"]
    return dout.reshape(-1, dout.shape[-1]) @ w.T


def _affine_db_over_n_only(values):
    return values.upstream["dout"].sum(axis=0)


def _softmax(values, weights="mask", divide="n", stable=True) -> tuple[np.ndarray, np.ndarray]:
    """(loss, dx) of the temporal softmax loss weighted by the mask (or "ones": ignored) over a divisor."""
    x, y, mask = values.inputs["x"], values.inputs["y"], values.inputs["mask"]
    n, t_steps, v = x.shape
    flat, labels = x.reshape(-1, v), y.reshape(-1)
    weights = (np.ones(mask.shape) if weights == "ones" else mask).reshape(-1).astype(float)
    if divide == "mask" and mask.all():  # the count is N * T: that mistake says it; an empty array matches nothing
        return np.empty(0), np.empty(0)
    divisor = {"n": n, "mask": mask.sum(), "nt": n * t_steps}[divide]
    rows = np.arange(flat.shape[0])
    with np.errstate(all="ignore"):
        shifted = flat - flat.max(axis=1, keepdims=True) if stable else flat
        exp = np.exp(shifted)
        probs = exp / exp.sum(axis=1, keepdims=True)
        loss = -(weights * np.log(probs[rows, labels])).sum() / divisor
        dx = probs.copy()
        dx[rows, labels] -= 1.0
        dx = dx * weights[:, None] / divisor
    return np.asarray(loss), dx.reshape(x.shape)


def _softmax_output(output, **bug):
    index = {"loss": 0, "dx": 1}[output]

    return lambda values: _softmax(values, **bug)[index]


# --- the layers ------------------------------------------------------------------------------------------

TANH_LINEAR = "the derivative of tanh is 1 - tanh(a)**2 = 1 - next_h**2, not 1 - tanh(a)"
TANH_MISSING = "multiply dnext_h by the tanh derivative 1 - next_h**2"
DWH_FROM_NEXT_H = "dWh is prev_h.T @ da: the hidden state the step received, not next_h"
BIAS = "add the bias b inside the tanh"
NO_TANH = "apply tanh to x @ Wx + prev_h @ Wh + b"
TIME_HINT = ("check what flows between time steps: the forward feeds each step's next_h to the next step; "
             "the backward adds the gradient carried back from step t+1 to dh[:, t]")

RNN_STEP = Layer(
    name="rnn_step",
    module=MODULE,
    forward=Function("rnn_step_forward", ("next_h",), rnn_layers.rnn_step_forward, returns_cache=True, mistakes=(
        Mistake("next_h", BIAS,
                lambda v: np.tanh(v.inputs["x"] @ v.inputs["Wx"] + v.inputs["prev_h"] @ v.inputs["Wh"]),
                note=" (exactly the bias b is missing)"),
        Mistake("next_h", NO_TANH,
                lambda v: v.inputs["x"] @ v.inputs["Wx"] + v.inputs["prev_h"] @ v.inputs["Wh"] + v.inputs["b"],
                note=" (tanh is missing)"),
    )),
    backward=(Function("rnn_step_backward", ("dx", "dprev_h", "dWx", "dWh", "db"), rnn_layers.rnn_step_backward,
                       gradients={"dx": "x", "dprev_h": "prev_h", "dWx": "Wx", "dWh": "Wh", "db": "b"},
                       mistakes=(
                           *_on_every(STEP_OUTPUTS, TANH_LINEAR,
                                      lambda output: _step_output(output, derivative=_tanh_grad_linear)),
                           *_on_every(STEP_OUTPUTS, TANH_MISSING,
                                      lambda output: _step_output(output, derivative=_tanh_grad_missing)),
                           Mistake("dWh", DWH_FROM_NEXT_H, _step_output("dWh", dWh_from_next_h=True)),
                       )),),
    arguments=(Array("x", ("n", "d")), Array("prev_h", ("n", "h")), Array("Wx", ("d", "h"), Normal(0.5)),
               Array("Wh", ("h", "h"), Normal(0.5)), Array("b", ("h",))),
    ranges={"n": (1, 3), "d": (1, 3), "h": (1, 3)},
    restrictions=(Restriction("N > 1", replace={"n": (1, 1)}),
                  Restriction("H > 1", replace={"h": (1, 1)})),
)

RNN = Layer(
    name="rnn",
    module=MODULE,
    forward=Function("rnn_forward", ("h",), _rnn_forward, returns_cache=True, mistakes=(
        Mistake("h", "each step's prev_h is the previous step's next_h, not h0", _rnn_from_h0_every_step),
        Mistake("h", "store each step's new hidden state next_h in h[:, t], not the state it started from",
                _rnn_stored_prev_h),
        Mistake("h", BIAS, lambda values: _rnn_sequence(values, bias=False), note=" (the bias b is missing)"),
        Mistake("h", NO_TANH, lambda values: _rnn_sequence(values, tanh=False), note=" (tanh is missing)"),
    )),
    backward=(Function("rnn_backward", ("dx", "dh0", "dWx", "dWh", "db"), _rnn_backward,
                       gradients={"dx": "x", "dh0": "h0", "dWx": "Wx", "dWh": "Wh", "db": "b"},
                       mistakes=(
                           Mistake("dx", "each step's upstream gradient is dh[:, t] plus the dprev_h carried back "
                                         "from step t+1, not dh[:, t] alone", _bptt_output("dx", upstream="local")),
                           Mistake("dx", "each step's upstream gradient is dh[:, t] plus the dprev_h carried back "
                                         "from step t+1, not the carried gradient alone",
                                   _bptt_output("dx", upstream="carried")),
                           *_on_every(SEQUENCE_OUTPUTS, TANH_LINEAR,
                                      lambda output: _bptt_output(output, derivative=_tanh_grad_linear)),
                           *_on_every(SEQUENCE_OUTPUTS, TANH_MISSING,
                                      lambda output: _bptt_output(output, derivative=_tanh_grad_missing)),
                           Mistake("dWh", DWH_FROM_NEXT_H, _bptt_output("dWh", dWh_from_next_h=True)),
                           Mistake("dWx", "accumulate dWx, dWh and db over the time steps with +=",
                                   _bptt_output("dWx", accumulate=False)),
                       )),),
    arguments=(Array("x", ("n", "t", "d")), Array("h0", ("n", "h")), Array("Wx", ("d", "h"), Normal(0.5)),
               Array("Wh", ("h", "h"), Normal(0.5)), Array("b", ("h",))),
    ranges={"n": (1, 2), "t": (1, 4), "d": (1, 3), "h": (1, 3)},
    restrictions=(Restriction("T > 1", replace={"t": (1, 1)}, hint=TIME_HINT),
                  Restriction("N > 1", replace={"n": (1, 1)})),
)


def _draw_embedding(draw, space) -> dict:
    """Sizes with V < N*T when repeats are required (some index must repeat) and V >= N*T when forbidden."""
    n = draw(st.integers(*space.range("n")))
    t = draw(st.integers(*space.range("t")))
    d = draw(st.integers(*space.range("d")))
    v = draw(st.integers(*space.range("v")))
    repeats = space.options["repeats"]
    repeats = draw(st.sampled_from(repeats)) if isinstance(repeats, tuple) else repeats
    if repeats == "required":
        t = max(t, 2) if n * t < 2 else t
        v = min(v, n * t - 1)
    elif repeats == "forbidden":
        v = max(v, n * t)
    return {"n": n, "t": t, "v": v, "d": d, "repeats": repeats}


def _check_embedding(variables) -> str | None:
    count = variables["n"] * variables["t"]
    if variables["repeats"] == "required" and variables["v"] >= count:
        return "repeats: required needs v < n * t"
    if variables["repeats"] == "forbidden" and variables["v"] < count:
        return "repeats: forbidden needs v >= n * t"
    return None


ASSIGNED = ("accumulate with np.add.at(dW, x, dout): `dW[x] = dout` and `dW[x] += dout` keep only one "
            "gradient for a word index that appears more than once")

WORD_EMBEDDING = Layer(
    name="word_embedding",
    module=MODULE,
    forward=Function("word_embedding_forward", ("out",), _word_embedding_forward, returns_cache=True),
    backward=(Function("word_embedding_backward", ("dW",), _word_embedding_backward, gradients={"dW": "W"},
                       mistakes=(Mistake("dW", ASSIGNED, _embedding_assigned,
                                         note=" (a repeated index kept only its last gradient)"),)),),
    arguments=(Array("x", ("n", "t"), Indices()), Array("W", ("v", "d"))),
    ranges={"n": (1, 3), "t": (1, 4), "v": (1, 5), "d": (1, 3)},
    options={"repeats": Option("allowed", ("allowed", "required", "forbidden"), flag=True)},
    draw=_draw_embedding,
    variables={"n": REQUIRED, "t": REQUIRED, "v": REQUIRED, "d": REQUIRED, "repeats": "allowed"},
    check=_check_embedding,
    describe="x shape {x} (indices below V = {v}), W shape {W}",
    restrictions=(Restriction("a word index appears more than once in x", replace={"repeats": "forbidden"},
                              hint=ASSIGNED, only="backward"),),
)

TEMPORAL_AFFINE = Layer(
    name="temporal_affine",
    module=MODULE,
    forward=Function("temporal_affine_forward", ("out",), _temporal_affine_forward, returns_cache=True,
                     mistakes=(Mistake("out", "add the bias b to every output", _affine_without_bias,
                                       note=" (exactly the bias b is missing)"),)),
    backward=(Function("temporal_affine_backward", ("dx", "dw", "db"), _temporal_affine_backward,
                       gradients={"dx": "x", "dw": "w", "db": "b"},
                       mistakes=(Mistake("dx", "reshape dx back to x's shape (N, T, D)", _affine_dx_flat),
                                 Mistake("db", "sum db over both N and T: dout.sum(axis=(0, 1))",
                                         _affine_db_over_n_only))),),
    arguments=(Array("x", ("n", "t", "d")), Array("w", ("d", "m")), Array("b", ("m",))),
    ranges={"n": (1, 3), "t": (1, 3), "d": (1, 3), "m": (1, 3)},
    restrictions=(Restriction("T > 1", replace={"t": (1, 1)}),
                  Restriction("N > 1", replace={"n": (1, 1)})),
    cache_fixed=True,  # the course provides this layer: cache = (x, w, b, out)
)

MASKED = "multiply each position's loss and dx by mask[n, t]: masked-out positions contribute nothing"
DIVIDE = "divide the summed loss (and dx) by N, not by the number of unmasked positions or by N * T"
STABILITY = "subtract each row's max score before np.exp: large scores overflow otherwise"
ROW_MAX = ("subtract each row's own max (over the last axis, keepdims=True), not the largest score of all: "
           "rows far below it underflow to a probability of 0")

TEMPORAL_SOFTMAX = Layer(
    name="temporal_softmax_loss",
    module=MODULE,
    forward=Function("temporal_softmax_loss", ("loss", "dx"), rnn_layers.temporal_softmax_loss,
                     gradients={"dx": "x"}, loss=True, mistakes=(
                         Mistake("loss", MASKED, _softmax_output("loss", weights="ones"),
                                 note=" (it equals the loss with the mask ignored)"),
                         Mistake("dx", MASKED, _softmax_output("dx", weights="ones"),
                                 note=" (it equals dx with the mask ignored)"),
                         Mistake("loss", DIVIDE, _softmax_output("loss", divide="mask"),
                                 note=" (divided by the number of unmasked positions)"),
                         Mistake("dx", DIVIDE, _softmax_output("dx", divide="mask"),
                                 note=" (divided by the number of unmasked positions)"),
                         Mistake("loss", DIVIDE, _softmax_output("loss", divide="nt"), note=" (divided by N * T)"),
                         Mistake("dx", DIVIDE, _softmax_output("dx", divide="nt"), note=" (divided by N * T)"),
                         Mistake("loss", STABILITY, _softmax_output("loss", stable=False)),
                         Mistake("dx", STABILITY, _softmax_output("dx", stable=False)),
                     )),
    arguments=(Array("x", ("n", "t", "v"), Normal("scale", "offset", "spread")),
               Array("y", ("n", "t"), Integers("v")),
               Array("mask", ("n", "t"), Mask())),
    ranges={"n": (1, 3), "t": (1, 3), "v": (2, 4)},
    minimum={"v": 2},
    # spread: each (n, t) row of scores at its own multiple of it (see gradeconv/specs/domains.py Normal)
    options={"scale": Option(1.0), "offset": Option(0.0), "spread": Option(0.0, between=(0.0, 1e6), flag=True),
             "mask": Option("partial", ("partial", "full"), flag=True)},
    restrictions=(
        Restriction("some positions are masked out", replace={"mask": "full"}, hint=MASKED),
        Restriction("rows sit at very different offsets", replace={"spread": 0.0}, hint=ROW_MAX),
        Restriction("N > 1", replace={"n": (1, 1)}),
        Restriction("T > 1", replace={"t": (1, 1)}),
    ),
)

LAYERS = (RNN_STEP, RNN, WORD_EMBEDDING, TEMPORAL_AFFINE, TEMPORAL_SOFTMAX)
