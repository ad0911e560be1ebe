"""The LSTM layers of cs231n/rnn_layers.py: one step (lstm_step_forward / lstm_step_backward) and a
sequence (lstm_forward / lstm_backward, h0 given, the initial cell state zero).

Gates are i, f, o, g in that order along the 4H axis of Wx, Wh and b. The
canonical caches follow the course's usual layout: a step caches
(x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c), a sequence the list of its
step caches. The known mistakes recompute the buggy formulas from the case's
inputs and upstream gradients.
"""
from __future__ import annotations

import numpy as np

from gradeconv.specs.model import Array, Function, Layer, Mistake, Restriction
from reference import rnn_layers

MODULE = "rnn_layers.py"


# --- canonical caches in the course's layout ---------------------------------------------------------

def _course_step_cache(cache):
    """The reference's step cache with next_c in place of tanh(next_c)."""
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, _ = cache
    return (x, prev_h, prev_c, Wx, Wh, i, f, o, g, f * prev_c + i * g)


def _reference_step_cache(cache):
    return (*tuple(cache)[:9], np.tanh(cache[9]))


def _lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    next_h, next_c, cache = rnn_layers.lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b)
    return next_h, next_c, _course_step_cache(cache)


def _lstm_step_backward(dnext_h, dnext_c, cache):
    return rnn_layers.lstm_step_backward(dnext_h, dnext_c, _reference_step_cache(cache))


def _lstm_forward(x, h0, Wx, Wh, b):
    h, (_, _, caches) = rnn_layers.lstm_forward(x, h0, Wx, Wh, b)
    return h, [_course_step_cache(step) for step in caches]


def _lstm_backward(dh, cache):
    steps = [_reference_step_cache(step) for step in cache]
    x0, prev_h0 = steps[0][0], steps[0][1]
    return rnn_layers.lstm_backward(dh, ((x0.shape[0], len(steps), x0.shape[1]), prev_h0.shape, steps))


# --- buggy formulas --------------------------------------------------------------------------------------

def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


#: where each gate's block sits along the 4H axis, for the right order and two common swaps
ORDERS = {"ifog": (0, 1, 2, 3), "ifgo": (0, 1, 3, 2), "fiog": (1, 0, 2, 3)}


def _step(x, prev_h, prev_c, Wx, Wh, b, order="ifog", cell_tanh=True):
    """(next_h, next_c, gates) of one LSTM step, optionally with a known bug."""
    blocks = np.split(x @ Wx + prev_h @ Wh + b, 4, axis=1)
    at = ORDERS[order]
    i, f, o, g = _sigmoid(blocks[at[0]]), _sigmoid(blocks[at[1]]), _sigmoid(blocks[at[2]]), np.tanh(blocks[at[3]])
    next_c = f * prev_c + i * g
    next_h = o * (np.tanh(next_c) if cell_tanh else next_c)
    return next_h, next_c, (i, f, o, g)


def _step_back(dnext_h, dnext_c, x, prev_h, prev_c, Wx, Wh, b, bug=None):
    """(dx, dprev_h, dprev_c, dWx, dWh, db) of one LSTM step, optionally with a known bug."""
    _, next_c, (i, f, o, g) = _step(x, prev_h, prev_c, Wx, Wh, b)
    tanh_c = np.tanh(next_c)
    tanh_prime = 1.0 - next_c**2 if bug == "tanh_of_c" else 1.0 - tanh_c**2
    dc = dnext_h * o * tanh_prime + (0.0 if bug == "no_dnext_c" else dnext_c)
    da = np.concatenate([dc * g * i * (1 - i), dc * prev_c * f * (1 - f), dnext_h * tanh_c * o * (1 - o),
                         dc * i * (1 - g**2)], axis=1)
    dprev_c = dc if bug == "no_forget" else dc * f
    return da @ Wx.T, da @ Wh.T, dprev_c, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def _step_inputs(values):
    i = values.inputs
    return i["x"], i["prev_h"], i["prev_c"], i["Wx"], i["Wh"], i["b"]


def _step_forward_output(output, **bug):
    index = {"next_h": 0, "next_c": 1}[output]
    return lambda values: _step(*_step_inputs(values), **bug)[index]


def _step_backward_output(output, bug):
    index = ("dx", "dprev_h", "dprev_c", "dWx", "dWh", "db").index(output)
    return lambda values: _step_back(values.upstream["dnext_h"], values.upstream["dnext_c"],
                                     *_step_inputs(values), bug=bug)[index]


def _sequence(values, carry_c=True, **step_bug):
    i = values.inputs
    x, prev_h, Wx, Wh, b = i["x"], i["h0"], i["Wx"], i["Wh"], i["b"]
    prev_c = np.zeros(prev_h.shape)
    h = np.zeros(x.shape[:2] + prev_h.shape[1:])
    for t in range(x.shape[1]):
        prev_h, next_c, _ = _step(x[:, t], prev_h, prev_c, Wx, Wh, b, **step_bug)
        prev_c = next_c if carry_c else np.zeros(prev_h.shape)
        h[:, t] = prev_h
    return h


def _sequence_output(**bug):
    return lambda values: _sequence(values, **bug)


def _sequence_back(values, upstream="both", carry_dc=True, bug=None) -> dict:
    i = values.inputs
    x, h0, Wx, Wh, b = i["x"], i["h0"], i["Wx"], i["Wh"], i["b"]
    dh = values.upstream["dh"]
    # the forward's states, recomputed
    hs, cs = [h0], [np.zeros(h0.shape)]
    for t in range(x.shape[1]):
        next_h, next_c, _ = _step(x[:, t], hs[-1], cs[-1], Wx, Wh, b)
        hs.append(next_h)
        cs.append(next_c)
    dx = np.zeros(x.shape)
    dWx, dWh, db = np.zeros(Wx.shape), np.zeros(Wh.shape), np.zeros(b.shape)
    dprev_h, dprev_c = np.zeros(h0.shape), np.zeros(h0.shape)
    for t in reversed(range(x.shape[1])):
        dnext_h = dh[:, t] if upstream == "local" else dh[:, t] + dprev_h
        dnext_c = dprev_c if carry_dc else np.zeros(h0.shape)
        dx[:, t], dprev_h, dprev_c, dWx_t, dWh_t, db_t = _step_back(dnext_h, dnext_c, x[:, t], hs[t], cs[t],
                                                                    Wx, Wh, b, bug=bug)
        dWx, dWh, db = dWx + dWx_t, dWh + dWh_t, db + db_t
    return {"dx": dx, "dh0": dprev_h, "dWx": dWx, "dWh": dWh, "db": db}


def _sequence_backward_output(output, **bug):
    return lambda values: _sequence_back(values, **bug)[output]


def _on_every(outputs, hint, compute_of, note="") -> tuple[Mistake, ...]:
    """One mistake on each output: a bug that changes them all is recognised whichever fails first."""
    return tuple(Mistake(output, hint, compute_of(output), note=note) for output in outputs)


# --- the layers ------------------------------------------------------------------------------------------

GATES = ("the gates are i, f, o, g in that order: a[:, :H] input, a[:, H:2H] forget, a[:, 2H:3H] output "
         "(all sigmoid), a[:, 3H:] the tanh candidate g")
CELL_TANH = "next_h = o * tanh(next_c): the cell state goes through tanh"
FORGET = "dprev_c = dc * f: the cell gradient passes back through the forget gate"
DNEXT_C = "the cell gradient dc is dnext_c plus dnext_h * o * (1 - tanh(next_c)**2)"
TANH_OF_C = "the derivative of tanh(next_c) is 1 - tanh(next_c)**2, not 1 - next_c**2"
TIME_HINT = ("check what flows between time steps: the forward carries both h and the cell state c; the backward "
             "adds the carried dprev_h to dh[:, t] and passes dprev_c to the earlier step")

STEP_SIZES = (Array("Wx", ("d", "h4")), Array("Wh", ("h", "h4")), Array("b", ("h4",)))
STEP_OUTPUTS = ("dx", "dprev_h", "dprev_c", "dWx", "dWh", "db")
SEQUENCE_OUTPUTS = ("dx", "dh0", "dWx", "dWh", "db")

LSTM_STEP = Layer(
    name="lstm_step",
    module=MODULE,
    forward=Function("lstm_step_forward", ("next_h", "next_c"), _lstm_step_forward, returns_cache=True, mistakes=(
        Mistake("next_h", GATES, _step_forward_output("next_h", order="ifgo"), note=" (o and g are swapped)"),
        Mistake("next_h", GATES, _step_forward_output("next_h", order="fiog"), note=" (i and f are swapped)"),
        Mistake("next_h", CELL_TANH, _step_forward_output("next_h", cell_tanh=False)),
    )),
    backward=(Function("lstm_step_backward", ("dx", "dprev_h", "dprev_c", "dWx", "dWh", "db"), _lstm_step_backward,
                       gradients={"dx": "x", "dprev_h": "prev_h", "dprev_c": "prev_c", "dWx": "Wx", "dWh": "Wh",
                                  "db": "b"},
                       mistakes=(Mistake("dprev_c", FORGET, _step_backward_output("dprev_c", "no_forget"),
                                         note=" (the forget-gate factor f is missing)"),
                                 *_on_every(STEP_OUTPUTS, DNEXT_C,
                                            lambda output: _step_backward_output(output, "no_dnext_c"),
                                            note=" (dnext_c is missing from the cell gradient)"),
                                 *_on_every(STEP_OUTPUTS, TANH_OF_C,
                                            lambda output: _step_backward_output(output, "tanh_of_c")))),),
    arguments=(Array("x", ("n", "d")), Array("prev_h", ("n", "h")), Array("prev_c", ("n", "h")), *STEP_SIZES),
    ranges={"n": (1, 3), "d": (1, 3), "h": (1, 3)},
    derive=lambda v: {"h4": 4 * v["h"]},
    restrictions=(Restriction("N > 1", replace={"n": (1, 1)}),
                  Restriction("H > 1", replace={"h": (1, 1)})),
)

LSTM = Layer(
    name="lstm",
    module=MODULE,
    forward=Function("lstm_forward", ("h",), _lstm_forward, returns_cache=True, mistakes=(
        Mistake("h", "carry the cell state: each step's prev_c is the previous step's next_c (only c0 is zero)",
                _sequence_output(carry_c=False)),
        Mistake("h", GATES, _sequence_output(order="ifgo"), note=" (o and g are swapped)"),
        Mistake("h", GATES, _sequence_output(order="fiog"), note=" (i and f are swapped)"),
        Mistake("h", CELL_TANH, _sequence_output(cell_tanh=False)),
    )),
    backward=(Function("lstm_backward", ("dx", "dh0", "dWx", "dWh", "db"), _lstm_backward,
                       gradients={"dx": "x", "dh0": "h0", "dWx": "Wx", "dWh": "Wh", "db": "b"},
                       mistakes=(
                           # over a sequence a dc without dnext_c is the same bug: dnext_c is the carried dprev_c
                           Mistake("dx", "the cell gradient flows through time: pass dprev_c back to the earlier "
                                         "step as its dnext_c and add it into dc",
                                   _sequence_backward_output("dx", carry_dc=False)),
                           Mistake("dx", "each step's dnext_h is dh[:, t] plus the dprev_h carried back from step "
                                         "t+1, not dh[:, t] alone", _sequence_backward_output("dx", upstream="local")),
                           *_on_every(SEQUENCE_OUTPUTS, FORGET,
                                      lambda output: _sequence_backward_output(output, bug="no_forget"),
                                      note=" (the forget-gate factor f is missing from dprev_c)"),
                           *_on_every(SEQUENCE_OUTPUTS, TANH_OF_C,
                                      lambda output: _sequence_backward_output(output, bug="tanh_of_c")),
                       )),),
    arguments=(Array("x", ("n", "t", "d")), Array("h0", ("n", "h")), *STEP_SIZES),
    ranges={"n": (1, 2), "t": (1, 3), "d": (1, 3), "h": (1, 2)},
    derive=lambda v: {"h4": 4 * v["h"]},
    restrictions=(Restriction("T > 1", replace={"t": (1, 1)}, hint=TIME_HINT),
                  Restriction("N > 1", replace={"n": (1, 1)})),
)

LAYERS = (LSTM_STEP, LSTM)
