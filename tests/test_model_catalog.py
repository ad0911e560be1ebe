"""Each classic whole-model bug fails exactly the model tests it should, and says what the bug is.

The mutants are textual edits of the student-style solutions in tests/solutions: a2's
classifiers/fc_net.py and classifiers/cnn.py (and layers.py, where the bug is in a layer the model
uses), a3's classifiers/rnn.py. Each is graded with the model tests of the bundled rubric
(assignment2 or assignment3), plus every layer test of layers.py when layers.py is the file
mutated. Every failing test must carry the words that name its bug: the spec's Mistake or hint
(gradeconv/specs/networks.py), or the initialisation check's message, and no other model
mistake's hint.
"""
from __future__ import annotations

import shutil

import pytest

from gradeconv import rubric as rubrics
from gradeconv import specs
from gradeconv.judging.grading import grade_submission
from gradeconv.specs import networks as spec
from gradeconv.submissions import Submission
from tests.conftest import ROOT

SOLUTIONS = ROOT / "tests" / "solutions"
FC, CNN, RNN, LAYERS = "classifiers/fc_net.py", "classifiers/cnn.py", "classifiers/rnn.py", "layers.py"
SOURCES = {("a2", FC), ("a2", CNN), ("a2", LAYERS), ("a3", RNN)}

FC_LOSS = ("FullyConnectedNet: loss and gradients", "FullyConnectedNet: loss and gradients with batchnorm",
           "FullyConnectedNet: loss and gradients with layernorm")
FC_SCORES = "FullyConnectedNet: test-mode scores after a training step"
FC_DROPOUT = "FullyConnectedNet: dropout in test mode"
FC_INIT = "FullyConnectedNet: initialisation"
CNN_LOSS = "ThreeLayerConvNet: loss and gradients"
CNN_INIT = "ThreeLayerConvNet: initialisation"
RNN_LOSS = "CaptioningRNN: loss and gradients"


def _hint(function: str, fragment: str) -> str:
    """The hint of the spec's mistake of `function` containing `fragment` (fails unless there is one)."""
    found = {mistake.hint for mistake in specs.function(function).mistakes if fragment in mistake.hint}
    assert len(found) == 1, (function, fragment, found)
    return found.pop()


NOT_MASKED = _hint("CaptioningRNN.loss", "<NULL>")
WRONG_HALF = _hint("CaptioningRNN.loss", "captions[:, :-1] in")
DROPOUT_MASK = _hint("dropout_backward", "1 / p scaling")

FC_REG_SUM = ('        for i in range(1, L + 1):\n            W = self.params["W%d" % i]\n'
              '            loss += 0.5 * self.reg * np.sum(W * W)\n')
FC_HIDDEN_GRAD = 'grads["W%d" % i] = dW + self.reg * self.params["W%d" % i]'
FC_LAST_AFFINE = ('        scores, caches["fc%d" % L] = affine_forward(out, self.params["W%d" % L], '
                  'self.params["b%d" % L])\n')
FC_LAST_BACKWARD = '        dout, dW, db = affine_backward(dscores, caches["fc%d" % L])\n'
FC_BN_MODE = '            for bn_param in self.bn_params:\n                bn_param["mode"] = mode\n'
FC_WEIGHTS = "weight_scale * np.random.randn(layer_dims[i], layer_dims[i + 1])"
CAST = "        for k, v in self.params.items():\n            self.params[k] = v.astype(dtype)\n"
FC_FORWARD_NORM = '''            out, caches["fc%d" % i] = affine_forward(out, W, b)
            if self.normalization == "batchnorm":
                gamma, beta = self.params["gamma%d" % i], self.params["beta%d" % i]
                out, caches["norm%d" % i] = batchnorm_forward(out, gamma, beta, self.bn_params[i - 1])
            elif self.normalization == "layernorm":
'''
FC_FORWARD_NORM_FIRST = '''            if self.normalization == "batchnorm":
                gamma, beta = self.params["gamma%d" % i], self.params["beta%d" % i]
                out, caches["norm%d" % i] = batchnorm_forward(out, gamma, beta, self.bn_params[i - 1])
            out, caches["fc%d" % i] = affine_forward(out, W, b)
            if self.normalization == "layernorm":
'''
FC_BACKWARD_NORM = '''            if self.normalization == "batchnorm":
                dout, dgamma, dbeta = batchnorm_backward_alt(dout, caches["norm%d" % i])
                grads["gamma%d" % i], grads["beta%d" % i] = dgamma, dbeta
            elif self.normalization == "layernorm":
                dout, dgamma, dbeta = layernorm_backward(dout, caches["norm%d" % i])
                grads["gamma%d" % i], grads["beta%d" % i] = dgamma, dbeta
            dout, dW, db = affine_backward(dout, caches["fc%d" % i])
'''
FC_BACKWARD_NORM_LAST = '''            if self.normalization == "layernorm":
                dout, dgamma, dbeta = layernorm_backward(dout, caches["norm%d" % i])
                grads["gamma%d" % i], grads["beta%d" % i] = dgamma, dbeta
            dout, dW, db = affine_backward(dout, caches["fc%d" % i])
            if self.normalization == "batchnorm":
                dout, dgamma, dbeta = batchnorm_backward_alt(dout, caches["norm%d" % i])
                grads["gamma%d" % i], grads["beta%d" % i] = dgamma, dbeta
'''
RNN_SOURCE = (SOLUTIONS / "a3" / "cs231n" / RNN).read_text()
#: everything the student writes in CaptioningRNN.loss, after the starter code's `loss, grads = 0.0, {}`
RNN_BODY = RNN_SOURCE[RNN_SOURCE.index("        # (1) initial hidden state"):
                      RNN_SOURCE.index("        return loss, grads\n\n    def sample")]

# (id, solution, file, [(old, new), ...] each old occurring once, {failing test: words its report must hold})
MUTANTS = [
    ("fc_l2_without_its_half", "a2", FC,
     [(FC_REG_SUM, FC_REG_SUM.replace("0.5 * self.reg", "self.reg"))], dict.fromkeys(FC_LOSS, spec.HALF)),
    ("fc_l2_missing_on_the_last_weights", "a2", FC,
     [(FC_REG_SUM, FC_REG_SUM.replace("range(1, L + 1)", "range(1, L)")),
      ('grads["W%d" % L] = dW + self.reg * self.params["W%d" % L]', 'grads["W%d" % L] = dW')],
     dict.fromkeys(FC_LOSS, spec.LAST)),
    ("fc_reg_missing_from_grads_W1", "a2", FC,
     [(FC_HIDDEN_GRAD, 'grads["W%d" % i] = dW + (self.reg * self.params["W%d" % i] if i > 1 else 0)')],
     dict.fromkeys(FC_LOSS, spec.FIRST)),
    ("fc_batchnorm_left_in_train_mode_at_test", "a2", FC, [(FC_BN_MODE, "            pass\n")],
     {FC_SCORES: spec.BN_TEST}),
    ("fc_normalization_requested_but_not_built", "a2", FC,
     [('if self.normalization in ("batchnorm", "layernorm") and i < self.num_layers - 1:', "if False:")],
     {FC_INIT: spec.NORM_BUILT}),
    ("fc_relu_after_the_last_affine", "a2", FC,
     [(FC_LAST_AFFINE, FC_LAST_AFFINE + '        scores, caches["relu%d" % L] = relu_forward(scores)\n'),
      (FC_LAST_BACKWARD, '        dscores = relu_backward(dscores, caches["relu%d" % L])\n' + FC_LAST_BACKWARD)],
     dict.fromkeys((*FC_LOSS, FC_SCORES, FC_DROPOUT), spec.RELU_LAST)),
    # gamma has the hidden layer's size, the input the previous layer's: numpy refuses to broadcast
    ("fc_batchnorm_before_the_affine", "a2", FC,
     [(FC_FORWARD_NORM, FC_FORWARD_NORM_FIRST), (FC_BACKWARD_NORM, FC_BACKWARD_NORM_LAST)],
     {FC_LOSS[1]: spec.NORM_ORDER, FC_SCORES: spec.NORM_ORDER}),
    ("fc_weights_uniform", "a2", FC, [(FC_WEIGHTS, FC_WEIGHTS.replace("randn", "rand"))],
     {FC_INIT: "no value is negative: np.random.rand draws uniformly"}),
    ("fc_weights_without_weight_scale", "a2", FC, [(FC_WEIGHTS, FC_WEIGHTS.replace("weight_scale * ", ""))],
     {FC_INIT: "multiply np.random.randn(...) by weight_scale"}),
    ("fc_biases_not_zero", "a2", FC,
     [('self.params["b%d" % (i + 1)] = np.zeros(layer_dims[i + 1])',
       'self.params["b%d" % (i + 1)] = weight_scale * np.random.randn(layer_dims[i + 1])')],
     {FC_INIT: "params['b1'] must start at zero"}),
    ("fc_params_not_cast_to_dtype", "a2", FC, [(CAST, "")], {FC_INIT: spec.DTYPE}),
    ("cnn_l2_without_its_half", "a2", CNN, [("loss += 0.5 * self.reg *", "loss += self.reg *")],
     {CNN_LOSS: spec.HALF}),
    ("cnn_reg_missing_from_grads_W1", "a2", CNN, [('        grads["W1"] += self.reg * W1\n', "")],
     {CNN_LOSS: spec.FIRST}),
    ("cnn_W2_size_assumes_32x32_input", "a2", CNN,
     [("num_filters * (H // 2) * (W // 2)", "num_filters * 16 * 16")], {CNN_INIT: spec.W2_SIZE}),
    ("cnn_weights_without_weight_scale", "a2", CNN,
     [('self.params["W2"] = weight_scale * np.random.randn(', 'self.params["W2"] = np.random.randn(')],
     {CNN_INIT: "multiply np.random.randn(...) by weight_scale"}),
    ("cnn_params_not_cast_to_dtype", "a2", CNN, [(CAST, "")], {CNN_INIT: spec.DTYPE}),
    # classic (not inverted) dropout: kept units not scaled in train mode, x * p in test mode
    ("dropout_not_inverted", "a2", LAYERS,
     [("mask = (np.random.rand(*x.shape) < p) / p", "mask = np.random.rand(*x.shape) < p"),
      ('    elif mode == "test":\n        out = x\n', '    elif mode == "test":\n        out = x * p\n')],
     {"dropout forward": "not inverted", "dropout forward: x of 1, 3 or 4 dimensions": "not inverted",
      "dropout backward": DROPOUT_MASK, FC_DROPOUT: spec.DROPOUT_TEST}),
    ("rnn_loss_left_as_the_stub", "a3", RNN, [(RNN_BODY, "")], {RNN_LOSS: spec.STUB}),
    ("rnn_null_tokens_not_masked", "a3", RNN,
     [("mask = captions_out != self._null", "mask = np.ones(captions_out.shape, dtype=bool)")],
     {RNN_LOSS: NOT_MASKED}),
    ("rnn_wrong_half_of_the_caption_fed", "a3", RNN,
     [("captions_in = captions[:, :-1]\n        captions_out = captions[:, 1:]",
       "captions_in = captions[:, 1:]\n        captions_out = captions[:, :-1]")],
     {RNN_LOSS: WRONG_HALF}),
]


def _rubric(name: str, layers: bool) -> rubrics.Rubric:
    """The bundled rubric's model tests (those of classifiers/), and with `layers` every test of layers.py too."""
    rubric = rubrics.load(rubrics.bundled()[name])
    data = rubric.model_dump()
    data["tests"] = [test for test, model in zip(data["tests"], rubric.tests)
                     if rubric.module_of(model).startswith("classifiers/")
                     or (layers and rubric.module_of(model) == LAYERS)]
    return rubrics.Rubric.model_validate(data)


@pytest.fixture(scope="module")
def rubric_for():
    made = {}

    def rubric(solution: str, path: str) -> rubrics.Rubric:
        key = (solution, path == LAYERS)
        if key not in made:
            made[key] = _rubric("assignment2" if solution == "a2" else "assignment3", layers=path == LAYERS)
        return made[key]

    return rubric


def grade(tmp_path, name: str, solution: str, path: str, edits, rubric: rubrics.Rubric):
    """The solution's package with the edits made to one file, graded in-process."""
    root = tmp_path / name
    shutil.copytree(SOLUTIONS / solution / "cs231n", root / "cs231n", ignore=shutil.ignore_patterns("__pycache__"))
    target = root / "cs231n" / path
    source = target.read_text()
    for old, new in edits:
        assert source.count(old) == 1, f"anchor not found once in {path}: {old!r}"
        source = source.replace(old, new)
    target.write_text(source)
    return grade_submission(Submission(name, root), rubric, "none")


def test_the_rubrics_grade_every_model(rubric_for):
    functions = {test.function for test in rubric_for("a2", FC).tests}
    assert functions == {"FullyConnectedNet.loss", "FullyConnectedNet.scores", "FullyConnectedNet.__init__",
                         "ThreeLayerConvNet.loss", "ThreeLayerConvNet.scores", "ThreeLayerConvNet.__init__"}
    assert {test.function for test in rubric_for("a3", RNN).tests} == {"CaptioningRNN.loss"}
    assert {"dropout_forward", "dropout_backward", "conv_forward_naive"} <= \
        {test.function for test in rubric_for("a2", LAYERS).tests}


@pytest.mark.parametrize("solution,path", [("a2", LAYERS), ("a3", RNN)])
def test_the_correct_solutions_pass(tmp_path, rubric_for, solution, path):
    result = grade(tmp_path, "correct", solution, path, [], rubric_for(solution, path))
    assert [test.name for test in result.tests if not test.passed] == []


@pytest.mark.parametrize("name,solution,path,edits,failing", MUTANTS, ids=[m[0] for m in MUTANTS])
def test_bug_fails_exactly_its_tests_and_is_named(tmp_path, rubric_for, name, solution, path, edits, failing):
    rubric = rubric_for(solution, path)
    result = grade(tmp_path, name, solution, path, edits, rubric)
    failed = {test.name: test for test in result.tests if not test.passed}
    assert set(failed) == set(failing), {name: test.output for name, test in failed.items()}
    assert result.score == rubric.max_score - sum(test.points for test in rubric.tests if test.name in failing)
    for test in failed.values():
        assert test.counterexample, f"{test.name} failed without a counterexample"
        report = f"{test.output}\n{test.diagnosis}"
        assert failing[test.name] in report, f"{test.name}: {report}"
        others = {mistake.hint for mistake in specs.function(test.function).mistakes} - {failing[test.name]}
        assert not [hint for hint in others if hint in (test.diagnosis or "")], f"{test.name}: {test.diagnosis}"


def test_the_dtype_a_model_is_asked_for_is_not_called_a_float32_mistake(tmp_path, rubric_for):
    """A model asked for float32 that keeps float64 must cast, not be told to stop casting to float32."""
    edits = next(edits for name, _, _, edits, _ in MUTANTS if name == "fc_params_not_cast_to_dtype")
    result = grade(tmp_path, "dtype", "a2", FC, edits, rubric_for("a2", FC))
    test = next(test for test in result.tests if not test.passed)
    assert test.outcome == "wrong_type" and "expected float32 (the dtype argument)" in test.output
    assert "do not cast to float32" not in test.diagnosis
