"""The reference update rules (reference/optim.py) against element-by-element loops written
from the course's formulas, the course notebook's published values, and the Solver's way of
calling them: ``next_w, config = rule(w, dw, config)`` with the config carried from step to step."""
import math

import numpy as np
import pytest

from reference import optim

SHAPES = [(4, 5), (7,), (2, 3, 4)]
STEPS = 4


# --- independent implementations: one weight at a time, scalars with the math module ------------


def loop_sgd(w, dw, lr):
    out = np.zeros(w.shape)
    for i in np.ndindex(w.shape):
        out[i] = w[i] - lr * dw[i]
    return out


def loop_sgd_momentum(w, dw, velocity, lr, momentum):
    out, new_velocity = np.zeros(w.shape), np.zeros(w.shape)
    for i in np.ndindex(w.shape):
        new_velocity[i] = momentum * velocity[i] - lr * dw[i]
        out[i] = w[i] + new_velocity[i]
    return out, new_velocity


def loop_rmsprop(w, dw, cache, lr, decay, eps):
    out, new_cache = np.zeros(w.shape), np.zeros(w.shape)
    for i in np.ndindex(w.shape):
        new_cache[i] = decay * cache[i] + (1 - decay) * dw[i] * dw[i]
        out[i] = w[i] - lr * dw[i] / (math.sqrt(new_cache[i]) + eps)
    return out, new_cache


def loop_adam(w, dw, m, v, t, lr, beta1, beta2, eps):
    """One Adam step; this step's number t + 1 is the one used in the bias correction."""
    step = t + 1
    out, new_m, new_v = np.zeros(w.shape), np.zeros(w.shape), np.zeros(w.shape)
    for i in np.ndindex(w.shape):
        new_m[i] = beta1 * m[i] + (1 - beta1) * dw[i]
        new_v[i] = beta2 * v[i] + (1 - beta2) * dw[i] * dw[i]
        m_hat = new_m[i] / (1 - beta1**step)
        v_hat = new_v[i] / (1 - beta2**step)
        out[i] = w[i] - lr * m_hat / (math.sqrt(v_hat) + eps)
    return out, new_m, new_v, step


def close(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-14)


def trajectory(shape, seed):
    """A starting w and STEPS gradients, all float64."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape), [rng.standard_normal(shape) for _ in range(STEPS)]


# --- several steps with the config carried as the Solver carries it -------------------------------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("lr", [None, 0.3])
def test_sgd_steps(shape, lr):
    w, grads = trajectory(shape, 1)
    config = None if lr is None else {"learning_rate": lr}
    lr = 1e-2 if lr is None else lr
    expected = w
    for dw in grads:
        w, config = optim.sgd(w, dw, config)
        expected = loop_sgd(expected, dw, lr)
        close(w, expected)
    assert config == {"learning_rate": lr}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("given", [{}, {"learning_rate": 0.05, "momentum": 0.5}])
def test_sgd_momentum_steps(shape, given):
    w, grads = trajectory(shape, 2)
    lr, momentum = given.get("learning_rate", 1e-2), given.get("momentum", 0.9)
    config, expected, velocity = dict(given), w, np.zeros(shape)
    for dw in grads:
        w, config = optim.sgd_momentum(w, dw, config)
        expected, velocity = loop_sgd_momentum(expected, dw, velocity, lr, momentum)
        close(w, expected)
        close(config["velocity"], velocity)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("given", [{}, {"learning_rate": 0.1, "decay_rate": 0.5, "epsilon": 1e-3}])
def test_rmsprop_steps(shape, given):
    w, grads = trajectory(shape, 3)
    lr, decay, eps = given.get("learning_rate", 1e-2), given.get("decay_rate", 0.99), given.get("epsilon", 1e-8)
    config, expected, cache = dict(given), w, np.zeros(shape)
    for dw in grads:
        w, config = optim.rmsprop(w, dw, config)
        expected, cache = loop_rmsprop(expected, dw, cache, lr, decay, eps)
        close(w, expected)
        close(config["cache"], cache)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(
    "given", [{}, {"learning_rate": 0.2, "beta1": 0.5, "beta2": 0.75, "epsilon": 1e-4}, {"t": 7}]
)
def test_adam_steps(shape, given):
    w, grads = trajectory(shape, 4)
    lr, eps = given.get("learning_rate", 1e-3), given.get("epsilon", 1e-8)
    beta1, beta2 = given.get("beta1", 0.9), given.get("beta2", 0.999)
    config, expected, m, v, t = dict(given), w, np.zeros(shape), np.zeros(shape), given.get("t", 0)
    for dw in grads:
        w, config = optim.adam(w, dw, config)
        expected, m, v, t = loop_adam(expected, dw, m, v, t, lr, beta1, beta2, eps)
        close(w, expected)
        close(config["m"], m)
        close(config["v"], v)
        assert config["t"] == t and type(config["t"]) is int


# --- defaults ----------------------------------------------------------------------------------

DEFAULTS = {
    optim.sgd: {"learning_rate": 1e-2},
    optim.sgd_momentum: {"learning_rate": 1e-2, "momentum": 0.9},
    optim.rmsprop: {"learning_rate": 1e-2, "decay_rate": 0.99, "epsilon": 1e-8},
    optim.adam: {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8},
}
#: the state each rule keeps, and the state it has after one step from fresh zeros
STATE = {optim.sgd: [], optim.sgd_momentum: ["velocity"], optim.rmsprop: ["cache"], optim.adam: ["m", "v", "t"]}


@pytest.mark.parametrize("rule", list(DEFAULTS), ids=lambda rule: rule.__name__)
@pytest.mark.parametrize("omitted", ["None", "{}"])
def test_missing_config_gets_the_course_defaults(rule, omitted):
    w, (dw, *_) = trajectory((3, 2), 5)
    config = None if omitted == "None" else {}
    _, returned = rule(w, dw, config)
    assert set(returned) == set(DEFAULTS[rule]) | set(STATE[rule])
    for key, value in DEFAULTS[rule].items():
        assert returned[key] == value, key
    if config is not None:
        assert returned is config  # filled in place with setdefault, as in the course


@pytest.mark.parametrize("rule", list(DEFAULTS), ids=lambda rule: rule.__name__)
def test_given_entries_are_kept_and_the_others_filled(rule):
    w, (dw, *_) = trajectory((3, 2), 6)
    _, returned = rule(w, dw, {"learning_rate": 0.123})
    assert returned["learning_rate"] == 0.123
    for key, value in DEFAULTS[rule].items():
        if key != "learning_rate":
            assert returned[key] == value, key


def test_first_steps_from_fresh_state():
    """Zero initial state: momentum's first step is -lr*dw, RMSProp's is lr*dw/(sqrt(0.01)*|dw|),
    Adam's (bias corrected with t = 1) is lr*dw/(|dw| + eps)."""
    w, (dw, *_) = trajectory((4, 3), 7)
    close(optim.sgd_momentum(w, dw)[0], w - 1e-2 * dw)
    close(optim.rmsprop(w, dw)[0], w - 1e-2 * dw / (np.sqrt(0.01 * dw**2) + 1e-8))
    next_w, config = optim.adam(w, dw)
    close(next_w, w - 1e-3 * dw / (np.abs(dw) + 1e-8))
    assert config["t"] == 1 and type(config["t"]) is int


# --- the course notebook's published values ------------------------------------------------------

N, D = 4, 5
NB_W = np.linspace(-0.4, 0.6, num=N * D).reshape(N, D)
NB_DW = np.linspace(-0.6, 0.4, num=N * D).reshape(N, D)


def notebook_close(actual, expected):
    """The notebook prints 8 decimals."""
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-8)


def test_notebook_sgd_momentum():
    v = np.linspace(0.6, 0.9, num=N * D).reshape(N, D)
    next_w, config = optim.sgd_momentum(NB_W, NB_DW, {"learning_rate": 1e-3, "velocity": v})
    notebook_close(next_w, [
        [0.1406, 0.20738947, 0.27417895, 0.34096842, 0.40775789],
        [0.47454737, 0.54133684, 0.60812632, 0.67491579, 0.74170526],
        [0.80849474, 0.87528421, 0.94207368, 1.00886316, 1.07565263],
        [1.14244211, 1.20923158, 1.27602105, 1.34281053, 1.4096]])
    notebook_close(config["velocity"], [
        [0.5406, 0.55475789, 0.56891579, 0.58307368, 0.59723158],
        [0.61138947, 0.62554737, 0.63970526, 0.65386316, 0.66802105],
        [0.68217895, 0.69633684, 0.71049474, 0.72465263, 0.73881053],
        [0.75296842, 0.76712632, 0.78128421, 0.79544211, 0.8096]])


def test_notebook_rmsprop():
    cache = np.linspace(0.6, 0.9, num=N * D).reshape(N, D)
    next_w, config = optim.rmsprop(NB_W, NB_DW, {"learning_rate": 1e-2, "cache": cache})
    notebook_close(next_w, [
        [-0.39223849, -0.34037513, -0.28849239, -0.23659121, -0.18467247],
        [-0.132737, -0.08078555, -0.02881884, 0.02316247, 0.07515774],
        [0.12716641, 0.17918792, 0.23122175, 0.28326742, 0.33532447],
        [0.38739248, 0.43947102, 0.49155973, 0.54365823, 0.59576619]])
    notebook_close(config["cache"], [
        [0.5976, 0.6126277, 0.6277108, 0.64284931, 0.65804321],
        [0.67329252, 0.68859723, 0.70395734, 0.71937285, 0.73484377],
        [0.75037008, 0.7659518, 0.78158892, 0.79728144, 0.81302936],
        [0.82883269, 0.84469141, 0.86060554, 0.87657507, 0.8926]])


def test_notebook_adam():
    """t = 5 given: the step is the 6th, and the notebook's values need that count in the bias
    correction (counting it as the 5th moves next_w by ~9e-5)."""
    m = np.linspace(0.6, 0.9, num=N * D).reshape(N, D)
    v = np.linspace(0.7, 0.5, num=N * D).reshape(N, D)
    next_w, config = optim.adam(NB_W, NB_DW, {"learning_rate": 1e-2, "m": m, "v": v, "t": 5})
    notebook_close(next_w, [
        [-0.40094747, -0.34836187, -0.29577703, -0.24319299, -0.19060977],
        [-0.1380274, -0.08544591, -0.03286534, 0.01971428, 0.0722929],
        [0.1248705, 0.17744702, 0.23002243, 0.28259667, 0.33516969],
        [0.38774145, 0.44031188, 0.49288093, 0.54544852, 0.59801459]])
    notebook_close(config["v"], [
        [0.69966, 0.68908382, 0.67851319, 0.66794809, 0.65738853],
        [0.64683452, 0.63628604, 0.6257431, 0.61520571, 0.60467385],
        [0.59414753, 0.58362676, 0.57311152, 0.56260183, 0.55209767],
        [0.54159906, 0.53110598, 0.52061845, 0.51013645, 0.49966]])
    notebook_close(config["m"], [
        [0.48, 0.49947368, 0.51894737, 0.53842105, 0.55789474],
        [0.57736842, 0.59684211, 0.61631579, 0.63578947, 0.65526316],
        [0.67473684, 0.69421053, 0.71368421, 0.73315789, 0.75263158],
        [0.77210526, 0.79157895, 0.81105263, 0.83052632, 0.85]])
    assert config["t"] == 6 and type(config["t"]) is int
    stale, *_ = loop_adam(NB_W, NB_DW, m, v, 4, 1e-2, 0.9, 0.999, 1e-8)  # corrected with t = 5
    assert np.max(np.abs(stale - next_w)) > 1e-5


# --- what the rules must leave alone, and what they return ---------------------------------------

STARTS = {
    optim.sgd: lambda shape: {"learning_rate": 0.1},
    optim.sgd_momentum: lambda shape: {"velocity": np.full(shape, 0.5)},
    optim.rmsprop: lambda shape: {"cache": np.full(shape, 0.5)},
    optim.adam: lambda shape: {"m": np.full(shape, 0.5), "v": np.full(shape, 0.25), "t": 3},
}


@pytest.mark.parametrize("rule", list(STARTS), ids=lambda rule: rule.__name__)
def test_inputs_are_left_unchanged_and_results_are_new_float64_arrays(rule):
    w, (dw, *_) = trajectory((3, 4), 8)
    config = STARTS[rule](w.shape)
    before = {"w": w.copy(), "dw": dw.copy()}
    before.update({key: value.copy() for key, value in config.items() if isinstance(value, np.ndarray)})
    given = {key: value for key, value in config.items() if isinstance(value, np.ndarray)}
    next_w, returned = rule(w, dw, config)
    np.testing.assert_array_equal(w, before["w"])
    np.testing.assert_array_equal(dw, before["dw"])
    for key, array in given.items():
        np.testing.assert_array_equal(array, before[key], err_msg=key)
    assert not np.shares_memory(next_w, w) and not np.shares_memory(next_w, dw)
    assert next_w.dtype == np.float64 and next_w.shape == w.shape
    for key in STATE[rule]:
        if key != "t":
            assert returned[key].dtype == np.float64 and returned[key].shape == w.shape, key
    assert not np.array_equal(next_w, w)


# --- the student-style solution (tests/solutions/a2/cs231n/optim.py) against the reference ------


@pytest.fixture(scope="module")
def solution_optim():
    from tests import a2_solution

    with a2_solution.imported("cs231n.optim") as (module,):
        yield module


@pytest.mark.parametrize("rule", list(STARTS), ids=lambda rule: rule.__name__)
@pytest.mark.parametrize("start", ["fresh", "given state"])
def test_solution_rules_match_the_reference(solution_optim, rule, start):
    """Several carried steps. The course's own sgd updates w in place (its docstring allows it),
    so each rule gets its own copy of w."""
    student_rule = getattr(solution_optim, rule.__name__)
    w, grads = trajectory((3, 4), 9)
    ours = STARTS[rule](w.shape) if start == "given state" else {}
    theirs = {key: value.copy() if isinstance(value, np.ndarray) else value for key, value in ours.items()}
    w_ours, w_theirs = w.copy(), w.copy()
    for dw in grads:
        w_ours, ours = rule(w_ours, dw, ours)
        w_theirs, theirs = student_rule(w_theirs.copy(), dw.copy(), theirs)
        np.testing.assert_allclose(w_theirs, w_ours, rtol=1e-12, atol=1e-15)
        assert set(theirs) == set(ours)
        for key, value in ours.items():
            np.testing.assert_allclose(theirs[key], value, rtol=1e-12, atol=1e-15, err_msg=key)
