"""The models of the course: FullyConnectedNet and TwoLayerNet (classifiers/fc_net.py), ThreeLayerConvNet
(classifiers/cnn.py) and CaptioningRNN (classifiers/rnn.py), each a Network (see model.py).

Each is graded with parameters the grader sets, drawn at a scale that keeps every
layer's activations moderate; the phases are the loss and its gradients
(`loss(X, y)`), the test-mode scores after a training step (`loss(X)`: batch
norm's running statistics, dropout's test mode) and the initialisation (names,
shapes, dtype, zero biases, weight scale within a statistical bound). Dropout is
checked through test-mode scores and with keep ratio 1, since masks differ. The
mistakes are the whole-model bugs most often seen in students' files; a model
that fails because a layer it uses failed its own test is told so by grading.
"""
from __future__ import annotations

import math

import numpy as np

from gradeconv.specs.domains import Captions, Integers
from gradeconv.specs.model import (ERROR, WRONG_SHAPE, WRONG_TYPE, WRONG_VALUE, Array, Call, Function, Layer, Mistake,
                                    Network, Option, Restriction)
from reference.classifiers import cnn, fc_net, rnn
from reference.layers import affine_forward, softmax_loss

#: how many standard deviations a created weight matrix's spread may stray from weight_scale
SIGMAS = 6.0
DTYPES = {"float64": np.float64, "float32": np.float32}
FC_LAYERS = ("affine_forward", "affine_backward", "relu_forward", "relu_backward", "softmax_loss")
CNN_LAYERS = ("conv_forward_naive", "conv_backward_naive", "max_pool_forward_naive", "max_pool_backward_naive",
              "affine_forward", "affine_backward", "relu_forward", "relu_backward", "softmax_loss")
CAPTIONING_LAYERS = ("word_embedding_forward",
                     "word_embedding_backward", "temporal_affine_forward", "temporal_affine_backward",
                     "temporal_softmax_loss")
REG = "the L2 term is 0.5 * reg * sum(W**2) over every weight matrix (W1 to the last), and reg * W in each dW"
HALF = "the L2 term needs its 0.5: loss += 0.5 * reg * np.sum(W * W), whose gradient is reg * W"
LAST = "regularise the last weight matrix too: its 0.5 * reg * sum(W**2) in the loss and reg * W in its gradient"
FIRST = "grads['W1'] needs its reg * W1 too"
STUB = ("the loss is still the starter code's 0.0 (loss, grads = 0.0, {}): compute the forward pass, the loss and "
        "a gradient for every parameter")
RELU_LAST = "no ReLU after the last affine layer: the scores are its output as it is, negative scores included"
BN_TEST = ("when y is None, set bn_param['mode'] = 'test' for every batch norm layer: at test time batch norm "
           "normalises with its running averages, not the test batch's statistics")
DROPOUT_TEST = ("dropout's test mode returns x unchanged (dropout_forward in layers.py): inverted dropout divides "
                "the kept units by p in train mode, so nothing is scaled at test time")
NORM_ORDER = ("normalise each affine layer's output: {affine - [batch/layer norm] - relu - [dropout]}, with gamma{i} "
              "and beta{i} of hidden layer i's size")
NORM_BUILT = ("with normalization set, __init__ creates gamma{i} (ones) and beta{i} (zeros) for every hidden layer i "
              "(not the last)")
DTYPE = "cast every parameter to the dtype argument at the end of __init__: self.params[k] = v.astype(dtype)"
W2_SIZE = "work out W2's first dimension from the input: num_filters * (H // 2) * (W // 2)"
TRAIN_STEP = Call("loss", ("X", "y"), ())  # a training step whose outputs are not compared (masks differ)


def _phases(cls: str, test_mode: tuple[Call, ...]) -> dict[str, tuple[Call, ...]]:
    return {f"{cls}.loss": (Call("loss", ("X", "y"), ("loss", "grads")),),
            f"{cls}.scores": test_mode,
            f"{cls}.__init__": ()}


def _functions(cls: str, reference, mistakes: tuple[Mistake, ...] = ()) -> tuple[Function, ...]:
    return (Function(f"{cls}.loss", ("loss", "grads"), reference, loss=True,
                     mistakes=tuple(mistake for mistake in mistakes if mistake.output in ("loss", "grads"))),
            Function(f"{cls}.scores", ("scores",), reference,
                     mistakes=tuple(mistake for mistake in mistakes if mistake.output == "scores")),
            Function(f"{cls}.__init__", ("params",), reference))


def _scaled(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
    return rng.standard_normal(shape) / math.sqrt(fan_in)


def _initial_values(variables: dict, params: dict[str, np.ndarray]) -> str | None:
    """Zero biases and betas, unit gammas, and weights of mean 0 and spread weight_scale (a statistical bound)."""
    scale = float(variables["weight_scale"])
    for name, array in params.items():
        kind = name.rstrip("0123456789")
        if kind in ("b", "beta", "b_proj", "b_vocab") and np.any(array != 0):
            return f"params[{name!r}] must start at zero"
        if kind == "gamma" and np.any(array != 1):
            return f"params[{name!r}] must start at one"
        if kind == "W" and array.size >= 2:
            values = array.astype(float).ravel()
            spread, mean = float(values.std()), float(values.mean())
            bound = SIGMAS / math.sqrt(2 * values.size)
            if abs(mean) > SIGMAS * scale / math.sqrt(values.size) or abs(spread / scale - 1) > bound:
                return (f"params[{name!r}] has mean {mean:.3g} and standard deviation {spread:.3g}: draw it as "
                        f"weight_scale * np.random.randn(...) (mean 0, standard deviation weight_scale = {scale:g})"
                        + _spread_seen(values, spread, scale, bound))
    return None


def _fc_uses(variables: dict) -> tuple[str, ...]:
    """The layers a FullyConnectedNet case runs: its normalization's and dropout's only when it has them."""
    used = FC_LAYERS
    if variables.get("normalization") in ("batchnorm", "layernorm"):
        used += (f"{variables['normalization']}_forward", f"{variables['normalization']}_backward")
    if float(variables.get("keep", 1.0)) < 1.0:
        used += ("dropout_forward", "dropout_backward")
    return used


def _spread_seen(values: np.ndarray, spread: float, scale: float, bound: float) -> str:
    """What wrong initial weights look like: no negative value (np.random.rand), or a spread of 1 (no weight_scale)."""
    if float(values.min()) >= 0:  # randn has a negative value among n with chance 1 - 2**-n
        return "; no value is negative: np.random.rand draws uniformly from [0, 1), np.random.randn from N(0, 1)"
    if abs(spread - 1) <= bound and abs(1 / scale - 1) > 2 * bound:
        return "; the standard deviation is 1: multiply np.random.randn(...) by weight_scale"
    return ""


def _model_hints(failure, case) -> list[str]:
    """Known model bugs read off the failure itself: parameters not cast to dtype, gamma and beta not created,
    a normalisation layer given the wrong size of input."""
    text = failure.message
    if failure.outcome == WRONG_TYPE and "(the dtype argument)" in text:
        return [DTYPE]
    if failure.outcome == WRONG_VALUE and "has the wrong names (missing gamma" in text:
        return [NORM_BUILT]
    normalised = case is not None and case.get("normalization", "none") != "none"
    if failure.outcome == ERROR and normalised and "could not be broadcast" in text:
        return [NORM_ORDER]
    return []


def _conv_net_hints(failure, case) -> list[str]:
    if failure.outcome == WRONG_SHAPE and "params['W2'] has shape" in failure.message:
        return [W2_SIZE, *_model_hints(failure, case)]
    return _model_hints(failure, case)


# --- FullyConnectedNet ---------------------------------------------------------------------------------------

def _hidden(variables: dict) -> list[int]:
    return [int(variables["h"]) + layer for layer in range(int(variables["depth"]))]


def _fc_parameters(variables: dict) -> dict[str, tuple[int, ...]]:
    dims = [int(variables["d"]), *_hidden(variables), int(variables["c"])]
    shapes: dict[str, tuple[int, ...]] = {}
    for layer in range(1, len(dims)):
        shapes[f"W{layer}"], shapes[f"b{layer}"] = (dims[layer - 1], dims[layer]), (dims[layer],)
        if layer < len(dims) - 1 and variables["normalization"] != "none":
            shapes[f"gamma{layer}"], shapes[f"beta{layer}"] = (dims[layer],), (dims[layer],)
    return shapes


def _draw_fc(variables: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    drawn = {}
    for name, shape in _fc_parameters(variables).items():
        if name.startswith("W"):
            drawn[name] = _scaled(rng, shape, shape[0])
        elif name.startswith("gamma"):
            drawn[name] = 1.0 + 0.2 * rng.standard_normal(shape)
        else:
            drawn[name] = 0.2 * rng.standard_normal(shape)
    return drawn


def _fc_constructor(variables: dict) -> tuple[list, dict]:
    normalization = variables["normalization"]
    return [_hidden(variables)], {
        "input_dim": int(variables["d"]), "num_classes": int(variables["c"]),
        variables["dropout_keyword"]: float(variables["keep"]),
        "normalization": None if normalization == "none" else normalization,
        "reg": float(variables["reg"]), "weight_scale": float(variables["weight_scale"]),
        "dtype": DTYPES[variables["dtype"]], "seed": int(variables["model_seed"])}


def _fc_reference(hidden_dims, dropout=None, **kwargs):
    """The reference model under either name the course has given the keep ratio."""
    if dropout is not None:
        kwargs["dropout_keep_ratio"] = dropout
    return fc_net.FullyConnectedNet(hidden_dims, **kwargs)


class _BatchnormTrainAtTest(fc_net.FullyConnectedNet):
    """Batch norm never set to test mode (the model leaves bn_param['mode'] as 'train')."""

    def _set_mode(self, mode: str) -> None:
        super()._set_mode(mode)
        if self.normalization == "batchnorm":
            for bn_param in self.bn_params:
                bn_param["mode"] = "train"


class _DropoutScaledAtTest(fc_net.FullyConnectedNet):
    """Dropout that is not inverted: its test mode multiplies by the keep ratio p."""

    def _hidden_forward(self, x, layer):
        out, cache = super()._hidden_forward(x, layer)
        if self.use_dropout and self.dropout_param["mode"] == "test":
            out = out * self.dropout_param["p"]
        return out, cache


class _ReluAfterLast(fc_net.FullyConnectedNet):
    """A ReLU after the last affine layer too (scores and loss only: no gradients)."""

    def loss(self, X, y=None):
        X = np.asarray(X).astype(self.dtype)
        self._set_mode("test" if y is None else "train")
        out = X
        for layer in range(1, self.num_layers):
            out, _ = self._hidden_forward(out, layer)
        last = self.num_layers
        scores, _ = affine_forward(out, self.params[f"W{last}"], self.params[f"b{last}"])
        scores = np.maximum(scores, 0)
        if y is None:
            return scores
        loss, _ = softmax_loss(scores, y)
        weights = [self.params[f"W{layer}"] for layer in range(1, last + 1)]
        return loss + 0.5 * self.reg * sum(float(np.sum(w * w)) for w in weights), {}


def _fc_buggy(model_class):
    """compute(values) -> the outputs of both phases of a buggy model: the loss and grads of loss(X, y), then the
    test-mode scores of loss(X_test) after that step (the scores phase makes the same training step first)."""

    def compute(values) -> dict:
        args, kwargs = _fc_constructor(values.variables)
        if "dropout" in kwargs:
            kwargs["dropout_keep_ratio"] = kwargs.pop("dropout")
        model = model_class(*args, **kwargs)
        for name in _fc_parameters(values.variables):
            model.params[name] = values.inputs[name].copy()
        loss, grads = model.loss(values.inputs["X"].copy(), values.inputs["y"].copy())
        scores = model.loss(values.inputs["X_test"].copy())
        return {"loss": np.asarray(float(loss)), **{f"grads[{key!r}]": value for key, value in grads.items()},
                "scores": np.asarray(scores, dtype=float)}

    return compute


def _stub(values) -> dict:
    """The starter code's loss, grads = 0.0, {} returned as it is."""
    return {"loss": np.asarray(0.0)}


def _weights(values) -> list[np.ndarray]:
    return [values.inputs[name] for name in sorted((name for name in values.inputs if name[0] == "W"
                                                    and name[1:].isdigit()), key=lambda name: int(name[1:]))]


def _loss_of(factory, constructor, parameters):
    """reference_loss(values) -> the reference model's (loss, grads) on a case, with the case's parameters."""

    def reference_loss(values) -> tuple[float, dict]:
        args, kwargs = constructor(values.variables)
        model = factory(*args, **kwargs)
        for name in parameters(values.variables):
            model.params[name] = values.inputs[name].copy()
        return model.loss(values.inputs["X"].copy(), values.inputs["y"].copy())

    return reference_loss


def _without_half(reference_loss):
    """The loss with the L2 term counted twice over: reg * sum(W**2), the 0.5 left out."""

    def compute(values) -> dict:
        loss, _ = reference_loss(values)
        reg = float(values.variables["reg"])
        return {"loss": np.asarray(loss + 0.5 * reg * sum(float(np.sum(w * w)) for w in _weights(values)))}

    return compute


_reference_loss = _loss_of(_fc_reference, _fc_constructor, _fc_parameters)


def _last_not_regularised(values) -> dict:
    loss, grads = _reference_loss(values)
    reg, last = float(values.variables["reg"]), _weights(values)[-1]
    name = f"W{len(_weights(values))}"
    return {"loss": np.asarray(loss - 0.5 * reg * float(np.sum(last * last))),
            f"grads[{name!r}]": grads[name] - reg * last}


def _first_gradient_not_regularised(reference_loss):
    """grads['W1'] without its reg * W1 (the other gradients right)."""

    def compute(values) -> dict:
        _, grads = reference_loss(values)
        return {"grads['W1']": grads["W1"] - float(values.variables["reg"]) * values.inputs["W1"]}

    return compute


FC_MISTAKES = (
    Mistake("loss", HALF, _without_half(_reference_loss)),
    Mistake("loss", LAST, _last_not_regularised),
    Mistake("grads", LAST, _last_not_regularised),
    Mistake("grads", FIRST, _first_gradient_not_regularised(_reference_loss)),
    Mistake("loss", STUB, _stub),
    Mistake("loss", RELU_LAST, _fc_buggy(_ReluAfterLast)),
    Mistake("scores", RELU_LAST, _fc_buggy(_ReluAfterLast)),
    Mistake("scores", BN_TEST, _fc_buggy(_BatchnormTrainAtTest)),
    Mistake("scores", DROPOUT_TEST, _fc_buggy(_DropoutScaledAtTest)),
)

FC_RESTRICTIONS = (
    Restriction("reg > 0", replace={"reg": 0.0}, hint=REG, hint_unless="L2 term"),
    Restriction("more than one hidden layer", replace={"depth": (1, 1)},
                hint="loop over every hidden layer: the network has len(hidden_dims) + 1 affine layers"),
    Restriction("normalization = batchnorm", replace={"normalization": ("none", "layernorm")}),
    Restriction("normalization = layernorm", replace={"normalization": ("none", "batchnorm")}),
    Restriction("N > 1", replace={"n": (1, 1)}),
)

FC_FUNCTIONS = _functions("FullyConnectedNet", _fc_reference, FC_MISTAKES)

FULLY_CONNECTED = Layer(
    name="FullyConnectedNet",
    forward=FC_FUNCTIONS[0],
    related=FC_FUNCTIONS[1:],
    arguments=(Array("X", ("n", "d")), Array("y", ("n",), Integers("c")), Array("X_test", ("n_test", "d"))),
    ranges={"n": (2, 4), "d": (2, 5), "depth": (1, 3), "h": (3, 5), "c": (2, 4), "n_test": (1, 3),
            "model_seed": (0, 1000)},
    minimum={"model_seed": 0},
    options={"normalization": Option(("none", "batchnorm", "layernorm"), ("none", "batchnorm", "layernorm"),
                                     flag=True),
             "reg": Option((0.0, 0.7), between=(0.0, 10.0)),
             "keep": Option(1.0, between=(0.01, 1.0)),
             "weight_scale": Option(1e-2, between=(1e-6, 10.0)),
             "dtype": Option("float64", ("float64", "float32")),
             "dropout_keyword": Option("dropout_keep_ratio", ("dropout_keep_ratio", "dropout"))},
    volume=("n", "d", "depth", "h", "c"),
    describe=("X shape {X}, hidden_dims of {depth} layer(s) from {h}, {c} classes, normalization {normalization}, "
              "reg {reg}, keep ratio {keep}"),
    restrictions=FC_RESTRICTIONS,
    hints=_model_hints,
    module="classifiers/fc_net.py",
    network=Network(
        cls="FullyConnectedNet", reference=_fc_reference, constructor=_fc_constructor,
        parameters=_fc_parameters, draw_parameters=_draw_fc,
        phases=_phases("FullyConnectedNet", (TRAIN_STEP, Call("loss", ("X_test",), ("scores",)))),
        initial="FullyConnectedNet.__init__", initial_check=_initial_values, uses=_fc_uses),
)


# --- TwoLayerNet (the course years that have it) -------------------------------------------------------------

def _two_layer_parameters(variables: dict) -> dict[str, tuple[int, ...]]:
    d, h, c = int(variables["d"]), int(variables["h"]), int(variables["c"])
    return {"W1": (d, h), "b1": (h,), "W2": (h, c), "b2": (c,)}


def _two_layer_constructor(variables: dict) -> tuple[list, dict]:
    return [], {"input_dim": int(variables["d"]), "hidden_dim": int(variables["h"]),
                "num_classes": int(variables["c"]), "weight_scale": float(variables["weight_scale"]),
                "reg": float(variables["reg"])}


def _draw_two_layer(variables: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {name: _scaled(rng, shape, shape[0]) if name[0] == "W" else 0.2 * rng.standard_normal(shape)
            for name, shape in _two_layer_parameters(variables).items()}


TWO_LAYER_FUNCTIONS = _functions("TwoLayerNet", fc_net.TwoLayerNet, (Mistake("loss", STUB, _stub),))

TWO_LAYER = Layer(
    name="TwoLayerNet",
    forward=TWO_LAYER_FUNCTIONS[0],
    related=TWO_LAYER_FUNCTIONS[1:],
    arguments=(Array("X", ("n", "d")), Array("y", ("n",), Integers("c")), Array("X_test", ("n_test", "d"))),
    ranges={"n": (2, 4), "d": (2, 5), "h": (3, 5), "c": (2, 4), "n_test": (1, 3)},
    options={"reg": Option((0.0, 0.7), between=(0.0, 10.0)), "weight_scale": Option(1e-3, between=(1e-6, 10.0))},
    volume=("n", "d", "h", "c"),
    describe="X shape {X}, hidden_dim {h}, {c} classes, reg {reg}",
    restrictions=(Restriction("reg > 0", replace={"reg": 0.0}, hint=REG), Restriction("N > 1", replace={"n": (1, 1)})),
    hints=_model_hints,
    module="classifiers/fc_net.py",
    network=Network(
        cls="TwoLayerNet", reference=fc_net.TwoLayerNet, constructor=_two_layer_constructor,
        parameters=_two_layer_parameters, draw_parameters=_draw_two_layer,
        phases=_phases("TwoLayerNet", (Call("loss", ("X_test",), ("scores",)),)),
        initial="TwoLayerNet.__init__", initial_check=_initial_values, uses=lambda variables: FC_LAYERS),
)


# --- ThreeLayerConvNet ---------------------------------------------------------------------------------------

def _cnn_parameters(variables: dict) -> dict[str, tuple[int, ...]]:
    c, height, width = int(variables["channels"]), 2 * int(variables["hh"]), 2 * int(variables["ww"])
    f, size, hidden, classes = (int(variables[name]) for name in ("filters", "filter_size", "hidden", "c"))
    return {"W1": (f, c, size, size), "b1": (f,), "W2": (f * (height // 2) * (width // 2), hidden),
            "b2": (hidden,), "W3": (hidden, classes), "b3": (classes,)}


def _draw_cnn(variables: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    drawn = {}
    for name, shape in _cnn_parameters(variables).items():
        fan_in = int(np.prod(shape[1:])) if name == "W1" else shape[0]
        drawn[name] = _scaled(rng, shape, fan_in) if name[0] == "W" else 0.2 * rng.standard_normal(shape)
    return drawn


def _cnn_constructor(variables: dict) -> tuple[list, dict]:
    return [], {"input_dim": (int(variables["channels"]), 2 * int(variables["hh"]), 2 * int(variables["ww"])),
                "num_filters": int(variables["filters"]), "filter_size": int(variables["filter_size"]),
                "hidden_dim": int(variables["hidden"]), "num_classes": int(variables["c"]),
                "weight_scale": float(variables["weight_scale"]), "reg": float(variables["reg"]),
                "dtype": DTYPES[variables["dtype"]]}


_cnn_reference_loss = _loss_of(cnn.ThreeLayerConvNet, _cnn_constructor, _cnn_parameters)


def _cnn_last_not_regularised(values) -> dict:
    loss, grads = _cnn_reference_loss(values)
    reg, last = float(values.variables["reg"]), values.inputs["W3"]
    return {"loss": np.asarray(loss - 0.5 * reg * float(np.sum(last * last))), "grads['W3']": grads["W3"] - reg * last}


CNN_FUNCTIONS = _functions("ThreeLayerConvNet", cnn.ThreeLayerConvNet, (
    Mistake("loss", HALF, _without_half(_cnn_reference_loss)),
    Mistake("loss", LAST, _cnn_last_not_regularised),
    Mistake("grads", LAST, _cnn_last_not_regularised),
    Mistake("grads", FIRST, _first_gradient_not_regularised(_cnn_reference_loss)),
    Mistake("loss", STUB, _stub),
))

CONV_NET = Layer(
    name="ThreeLayerConvNet",
    forward=CNN_FUNCTIONS[0],
    related=CNN_FUNCTIONS[1:],
    arguments=(Array("X", ("n", "channels", "height", "width")), Array("y", ("n",), Integers("c")),
               Array("X_test", ("n_test", "channels", "height", "width"))),
    ranges={"n": (1, 3), "channels": (1, 3), "hh": (2, 4), "ww": (2, 4), "filters": (2, 4), "hidden": (3, 5),
            "c": (2, 4), "n_test": (1, 2)},
    options={"filter_size": Option((3, 5), (3, 5, 7)), "reg": Option((0.0, 0.7), between=(0.0, 10.0)),
             "weight_scale": Option(1e-3, between=(1e-6, 10.0)), "dtype": Option("float64", ("float64", "float32"))},
    derive=lambda v: {"height": 2 * int(v["hh"]), "width": 2 * int(v["ww"])},
    volume=("n", "channels", "hh", "ww", "filters"),
    describe="X shape {X}, {filters} filters of size {filter_size}, hidden_dim {hidden}, {c} classes, reg {reg}",
    restrictions=(
        Restriction("H != W", replace={"ww": (2, 2), "hh": (2, 2)}, hint=W2_SIZE),
        Restriction("reg > 0", replace={"reg": 0.0}, hint=REG),
        Restriction("filter_size > 3", replace={"filter_size": 3},
                    hint="pad the convolution by (filter_size - 1) // 2 so it keeps H and W"),
    ),
    hints=_conv_net_hints,
    module="classifiers/cnn.py",
    network=Network(
        cls="ThreeLayerConvNet", reference=cnn.ThreeLayerConvNet, constructor=_cnn_constructor,
        parameters=_cnn_parameters, draw_parameters=_draw_cnn,
        phases=_phases("ThreeLayerConvNet", (Call("loss", ("X_test",), ("scores",)),)),
        initial="ThreeLayerConvNet.__init__", initial_check=_initial_values, uses=lambda variables: CNN_LAYERS),
)


# --- CaptioningRNN -------------------------------------------------------------------------------------------

def _vocabulary(variables: dict) -> dict[str, int]:
    words = {"<NULL>": 0, "<START>": 1, "<END>": 2}
    words.update({f"word{index}": index for index in range(3, int(variables["v"]))})
    return words


def _captioning_uses(variables: dict) -> tuple[str, ...]:
    cell = "lstm" if variables.get("cell_type") == "lstm" else "rnn"
    return (f"{cell}_forward", f"{cell}_backward", *CAPTIONING_LAYERS)


def _captioning_parameters(variables: dict) -> dict[str, tuple[int, ...]]:
    v, d, w, h = (int(variables[name]) for name in ("v", "d", "wordvec", "hidden"))
    gates = 4 if variables["cell_type"] == "lstm" else 1
    return {"W_embed": (v, w), "W_proj": (d, h), "b_proj": (h,), "Wx": (w, gates * h), "Wh": (h, gates * h),
            "b": (gates * h,), "W_vocab": (h, v), "b_vocab": (v,)}


def _draw_captioning(variables: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    drawn = {}
    for name, shape in _captioning_parameters(variables).items():
        drawn[name] = _scaled(rng, shape, shape[0]) if len(shape) == 2 else 0.2 * rng.standard_normal(shape)
    return drawn


def _captioning_constructor(variables: dict) -> tuple[list, dict]:
    return [_vocabulary(variables)], {"input_dim": int(variables["d"]), "wordvec_dim": int(variables["wordvec"]),
                                      "hidden_dim": int(variables["hidden"]), "cell_type": variables["cell_type"],
                                      "dtype": np.float64}


def _captioning_loss(values, captions_in: np.ndarray, captions_out: np.ndarray, mask: np.ndarray) -> dict:
    """The captioning loss on the given halves and mask, with the case's parameters (a buggy model's loss)."""
    from reference import rnn_layers as layers
    p, features = values.inputs, values.inputs["features"]
    forward = layers.lstm_forward if values.variables["cell_type"] == "lstm" else layers.rnn_forward
    h0 = features @ p["W_proj"] + p["b_proj"]
    words, _ = layers.word_embedding_forward(captions_in, p["W_embed"])
    h, _ = forward(words, h0, p["Wx"], p["Wh"], p["b"])
    scores, _ = layers.temporal_affine_forward(h, p["W_vocab"], p["b_vocab"])
    loss, _ = layers.temporal_softmax_loss(scores, captions_out, mask)
    return {"loss": np.asarray(float(loss))}


def _not_masked(values) -> dict:
    """The loss counting <NULL> tokens too."""
    captions = values.inputs["captions"]
    return _captioning_loss(values, captions[:, :-1], captions[:, 1:], np.ones(captions[:, 1:].shape, bool))


def _wrong_half(values) -> dict:
    """captions[:, 1:] fed in and captions[:, :-1] scored: the halves swapped."""
    captions = values.inputs["captions"]
    return _captioning_loss(values, captions[:, 1:], captions[:, :-1], captions[:, :-1] != 0)


CAPTIONING = Layer(
    name="CaptioningRNN",
    forward=Function("CaptioningRNN.loss", ("loss", "grads"), rnn.CaptioningRNN, loss=True, mistakes=(
        Mistake("loss", "mask out the <NULL> tokens: mask = captions_out != self._null, passed to "
                        "temporal_softmax_loss", _not_masked),
        Mistake("loss", "feed captions[:, :-1] in and score against captions[:, 1:] (the next word)", _wrong_half),
        Mistake("loss", STUB, _stub),
    )),
    arguments=(Array("features", ("n", "d")), Array("captions", ("n", "length"), Captions("v"))),
    ranges={"n": (1, 3), "t": (2, 4), "v": (4, 7), "d": (2, 4), "wordvec": (2, 4), "hidden": (2, 4)},
    options={"cell_type": Option(("rnn", "lstm"), ("rnn", "lstm"))},
    derive=lambda v: {"length": int(v["t"]) + 1},
    volume=("n", "t", "v", "hidden"),
    describe="features shape {features}, captions shape {captions}, vocabulary of {v}, cell_type {cell_type}",
    restrictions=(Restriction("cell_type = lstm", replace={"cell_type": "rnn"}),
                  Restriction("cell_type = rnn", replace={"cell_type": "lstm"}),
                  Restriction("N > 1", replace={"n": (1, 1)})),
    module="classifiers/rnn.py",
    network=Network(
        cls="CaptioningRNN", reference=rnn.CaptioningRNN, constructor=_captioning_constructor,
        parameters=_captioning_parameters, draw_parameters=_draw_captioning,
        phases={"CaptioningRNN.loss": (Call("loss", ("features", "captions"), ("loss", "grads")),)},
        uses=_captioning_uses),
)

LAYERS = (FULLY_CONNECTED, TWO_LAYER, CONV_NET, CAPTIONING)
