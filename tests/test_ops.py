"""convnet.ops: every differentiable op's gradient against float64 central finite differences
(through a GradientTape, on Variables), forwards against NumPy / SciPy / Keras' formulas,
Keras' dtype rules, NumPy's protocols on traced tensors, and ops in functional models."""
import os
import tempfile

import numpy as np
import pytest
from scipy import special

import convnet as keras
from convnet import backend, layers, ops
from convnet.autodiff import GradientTape, Tensor, value_of
from convnet.graph import KerasTensor
from convnet.utils import numerical_gradient
from convnet.variables import Variable

RNG = np.random.default_rng(20240518)


@pytest.fixture(autouse=True)
def one_thread():
    """Finite differences call the compiled kernels hundreds of times on tiny arrays, where
    waking OpenMP threads costs more than the work (results do not depend on the count)."""
    before = keras.get_num_threads()
    keras.set_num_threads(1)
    yield
    keras.set_num_threads(before)


def normal(*shape):
    return RNG.standard_normal(shape)


def uniform(low, high, *shape):
    return RNG.uniform(low, high, shape)


def positive(*shape):
    return uniform(0.5, 2.0, *shape)


def spd(n):
    a = normal(n, n)
    return a @ a.T + n * np.eye(n)


def check_gradient(fn, *inputs, rtol=1e-5, atol=1e-7):
    """tape.gradient of sum(w * fn(*variables)) against central finite differences of the
    same function of plain arrays, for a fixed random projection w."""
    inputs = [np.array(a, dtype=np.float64) for a in inputs]
    variables = [Variable(a.copy(), dtype="float64") for a in inputs]
    weights = RNG.standard_normal(np.shape(np.asarray(value_of(fn(*inputs)))))
    with GradientTape() as tape:
        out = fn(*variables)
        assert isinstance(out, Tensor) and out.node is not None, "the op was not recorded"
        loss = ops.sum(ops.multiply(out, weights))
    grads = tape.gradient(loss, variables)
    for i, a in enumerate(inputs):
        def f(xi, i=i):
            args = [xi if j == i else inputs[j] for j in range(len(inputs))]
            return float(np.sum(np.asarray(fn(*args)) * weights))
        expected = numerical_gradient(f, a.copy())
        assert grads[i].shape == a.shape and grads[i].dtype == np.float64
        np.testing.assert_allclose(grads[i], expected, rtol=rtol, atol=atol,
                                   err_msg=f"gradient of input {i}")


# ----------------------------------------------------------------------------- elementwise

UNARY = {
    "exp": (ops.exp, normal(2, 3)), "exp2": (ops.exp2, normal(2, 3)),
    "expm1": (ops.expm1, normal(2, 3)), "log": (ops.log, positive(2, 3)),
    "log2": (ops.log2, positive(2, 3)), "log10": (ops.log10, positive(2, 3)),
    "log1p": (ops.log1p, positive(2, 3)), "sqrt": (ops.sqrt, positive(2, 3)),
    "cbrt": (ops.cbrt, positive(2, 3)), "sin": (ops.sin, normal(2, 3)),
    "cos": (ops.cos, normal(2, 3)), "tan": (ops.tan, uniform(-1, 1, 2, 3)),
    "arcsin": (ops.arcsin, uniform(-0.9, 0.9, 2, 3)),
    "arccos": (ops.arccos, uniform(-0.9, 0.9, 2, 3)), "arctan": (ops.arctan, normal(2, 3)),
    "sinh": (ops.sinh, normal(2, 3)), "cosh": (ops.cosh, normal(2, 3)),
    "tanh": (ops.tanh, normal(2, 3)), "arcsinh": (ops.arcsinh, normal(2, 3)),
    "arccosh": (ops.arccosh, uniform(1.2, 3, 2, 3)),
    "arctanh": (ops.arctanh, uniform(-0.9, 0.9, 2, 3)), "sinc": (ops.sinc, normal(2, 3)),
    "deg2rad": (ops.deg2rad, normal(2, 3)), "rad2deg": (ops.rad2deg, normal(2, 3)),
    "i0": (ops.i0, normal(2, 3)), "negative": (ops.negative, normal(2, 3)),
    "absolute": (ops.absolute, normal(2, 3)), "fabs": (ops.fabs, normal(2, 3)),
    "square": (ops.square, normal(2, 3)), "reciprocal": (ops.reciprocal, positive(2, 3)),
    "real": (ops.real, normal(2, 3)), "conjugate": (ops.conjugate, normal(2, 3)),
    "copy": (ops.copy, normal(2, 3)), "nan_to_num": (ops.nan_to_num, normal(2, 3)),
    "clip": (lambda x: ops.clip(x, -0.5, 0.7), normal(2, 3)),
    "erf": (ops.erf, normal(2, 3)), "erfc": (ops.erfc, normal(2, 3)),
    "erfinv": (ops.erfinv, uniform(-0.9, 0.9, 2, 3)), "rsqrt": (ops.rsqrt, positive(2, 3)),
    "relu": (ops.relu, normal(2, 3)), "relu6": (ops.relu6, 4 * normal(2, 3)),
    "sigmoid": (ops.sigmoid, 3 * normal(2, 3)),
    "sparse_sigmoid": (ops.sparse_sigmoid, 2 * normal(2, 3)),
    "softplus": (ops.softplus, 3 * normal(2, 3)), "softsign": (ops.softsign, normal(2, 3)),
    "silu": (ops.silu, normal(2, 3)), "log_sigmoid": (ops.log_sigmoid, 3 * normal(2, 3)),
    "hard_sigmoid": (ops.hard_sigmoid, 4 * normal(2, 3)),
    "hard_silu": (ops.hard_silu, 4 * normal(2, 3)),
    "tanh_shrink": (ops.tanh_shrink, normal(2, 3)), "hard_tanh": (ops.hard_tanh, 2 * normal(2, 3)),
    "sparse_plus": (ops.sparse_plus, 2 * normal(2, 3)),
    "leaky_relu": (lambda x: ops.leaky_relu(x, 0.1), normal(2, 3)),
    "elu": (lambda x: ops.elu(x, 0.7), normal(2, 3)), "selu": (ops.selu, normal(2, 3)),
    "celu": (lambda x: ops.celu(x, 0.5), normal(2, 3)),
    "gelu tanh": (ops.gelu, 2 * normal(2, 3)),
    "gelu erf": (lambda x: ops.gelu(x, approximate=False), 2 * normal(2, 3)),
    "squareplus": (ops.squareplus, normal(2, 3)),
    "soft_shrink": (ops.soft_shrink, 2 * normal(2, 3)),
    "hard_shrink": (ops.hard_shrink, 2 * normal(2, 3)),
    "threshold": (lambda x: ops.threshold(x, 0.2, -1.0), normal(2, 3)),
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_gradient(name):
    fn, x = UNARY[name]
    check_gradient(fn, x)


NUMPY_UNARY = ["exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sqrt", "cbrt", "sin",
               "cos", "tan", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "arcsinh",
               "arccosh", "arctanh", "sinc", "deg2rad", "rad2deg", "i0", "negative",
               "absolute", "fabs", "square", "reciprocal", "real", "conjugate", "copy",
               "nan_to_num"]


@pytest.mark.parametrize("name", NUMPY_UNARY)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_unary_forward_matches_numpy(name, dtype):
    fn, x = UNARY[name]
    x = x.astype(dtype)
    out = fn(x)
    assert out.dtype == dtype
    np.testing.assert_allclose(out, getattr(np, name)(x), rtol=1e-6 if dtype == "float32" else
                               1e-12)


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


ACTIVATION_FORMULAS = {  # Keras' documented definitions
    "relu": lambda x: np.maximum(x, 0), "relu6": lambda x: np.clip(x, 0, 6),
    "sigmoid": _sigmoid, "sparse_sigmoid": lambda x: np.clip((x + 1) / 2, 0, 1),
    "softplus": lambda x: np.log1p(np.exp(x)), "softsign": lambda x: x / (1 + np.abs(x)),
    "silu": lambda x: x * _sigmoid(x), "log_sigmoid": lambda x: np.log(_sigmoid(x)),
    "hard_sigmoid": lambda x: np.clip(x + 3, 0, 6) / 6,
    "hard_silu": lambda x: x * np.clip(x + 3, 0, 6) / 6,
    "tanh_shrink": lambda x: x - np.tanh(x), "hard_tanh": lambda x: np.clip(x, -1, 1),
    "sparse_plus": lambda x: np.where(x <= -1, 0, np.where(x >= 1, x, (x + 1) ** 2 / 4)),
    "leaky_relu": lambda x: np.where(x > 0, x, 0.1 * x),
    "elu": lambda x: np.where(x > 0, x, 0.7 * (np.exp(x) - 1)),
    "selu": lambda x: 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 *
                                                      (np.exp(x) - 1)),
    "celu": lambda x: np.maximum(x, 0) + 0.5 * (np.exp(np.minimum(x, 0) / 0.5) - 1),
    "gelu tanh": lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3))),
    "gelu erf": lambda x: 0.5 * x * (1 + special.erf(x / np.sqrt(2))),
    "squareplus": lambda x: (x + np.sqrt(x * x + 4)) / 2,
    "soft_shrink": lambda x: np.sign(x) * np.maximum(np.abs(x) - 0.5, 0),
    "hard_shrink": lambda x: np.where(np.abs(x) > 0.5, x, 0),
    "threshold": lambda x: np.where(x > 0.2, x, -1.0),
    "erf": special.erf, "erfc": special.erfc, "erfinv": special.erfinv,
    "rsqrt": lambda x: 1 / np.sqrt(x), "clip": lambda x: np.clip(x, -0.5, 0.7),
}


@pytest.mark.parametrize("name", sorted(ACTIVATION_FORMULAS))
def test_activation_forward_matches_keras_formula(name):
    fn, x = UNARY[name]
    np.testing.assert_allclose(fn(x), ACTIVATION_FORMULAS[name](x), rtol=1e-12, atol=1e-12)
    assert fn(x.astype(np.float32)).dtype == np.float32


def test_gelu_defaults_to_the_tanh_approximation_as_keras_ops():
    x = np.linspace(-3, 3, 7)
    np.testing.assert_allclose(ops.gelu(x), ACTIVATION_FORMULAS["gelu tanh"](x), rtol=1e-12)


A, ROW, COL = normal(2, 3), normal(3), normal(2, 1)
BINARY = {
    "add": ops.add, "subtract": ops.subtract, "multiply": ops.multiply, "divide": ops.divide,
    "divide_no_nan": ops.divide_no_nan, "maximum": ops.maximum, "minimum": ops.minimum,
    "fmax": ops.fmax, "fmin": ops.fmin, "mod": ops.mod, "fmod": ops.fmod,
    "arctan2": ops.arctan2, "hypot": ops.hypot, "logaddexp": ops.logaddexp,
    "logaddexp2": ops.logaddexp2,
}


@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize("shapes", ["same", "row", "column"])
def test_binary_gradient_with_broadcasting(name, shapes):
    other = {"same": normal(2, 3), "row": ROW, "column": COL}[shapes]
    check_gradient(BINARY[name], A, other + np.sign(other) * 0.5)


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_forward_matches_numpy(name):
    reference = {"divide_no_nan": np.divide}.get(name, getattr(np, name, None))
    np.testing.assert_allclose(BINARY[name](A, ROW), reference(A, ROW), rtol=1e-12)


def test_power_gradient_in_base_and_exponent():
    check_gradient(ops.power, positive(2, 3), normal(3))
    check_gradient(lambda x: ops.power(x, 3), normal(2, 3))


def test_divide_no_nan_is_zero_with_zero_gradient_where_the_divisor_is_zero():
    b = np.array([0.0, 2.0])
    np.testing.assert_array_equal(ops.divide_no_nan(np.array([1.0, 3.0]), b), [0.0, 1.5])
    v = Variable(np.array([1.0, 3.0]), dtype="float64")
    with GradientTape() as tape:
        loss = ops.sum(ops.divide_no_nan(v, b))
    np.testing.assert_array_equal(tape.gradient(loss, [v])[0], [0.0, 0.5])


def test_maximum_gives_a_tie_to_the_first_operand():
    a, b = Variable(np.ones(2)), Variable(np.ones(2))
    with GradientTape() as tape:
        loss = ops.sum(ops.maximum(a, b))
    ga, gb = tape.gradient(loss, [a, b])
    np.testing.assert_array_equal(ga, [1, 1])
    np.testing.assert_array_equal(gb, [0, 0])


def test_ldexp_gradient_and_integer_exponent():
    exponents = np.array([1, -2, 3])
    check_gradient(lambda x: ops.ldexp(x, exponents), normal(3))
    np.testing.assert_allclose(ops.ldexp(np.ones(3), exponents), np.ldexp(1.0, exponents))
    with pytest.raises(TypeError, match="integer"):
        ops.ldexp(np.ones(3), np.ones(3))


def test_where_gradient_reaches_both_branches():
    condition = A > 0
    check_gradient(lambda x, y: ops.where(condition, x, y), A, ROW)
    np.testing.assert_array_equal(ops.where(condition, A, ROW), np.where(condition, A, ROW))


def test_select_takes_the_first_true_condition():
    conditions = [A > 1, A > 0]
    check_gradient(lambda x, y: ops.select(conditions, [x, y], -1.0), A, ROW)
    np.testing.assert_array_equal(ops.select(conditions, [A, ROW], -1.0),
                                  np.select(conditions, [A, np.broadcast_to(ROW, A.shape)], -1.0))


# ----------------------------------------------------------------------------- reductions

X3 = normal(2, 3, 4)
AXES = [None, 0, 1, -1, (0, 2)]
REDUCTIONS = {
    "sum": (ops.sum, np.sum), "mean": (ops.mean, np.mean), "max": (ops.max, np.max),
    "min": (ops.min, np.min), "prod": (ops.prod, np.prod), "var": (ops.var, np.var),
    "std": (ops.std, np.std), "logsumexp": (ops.logsumexp, special.logsumexp),
    "ptp": (ops.ptp, np.ptp), "median": (ops.median, np.median),
    "amax": (ops.amax, np.amax), "amin": (ops.amin, np.amin),
}


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("keepdims", [False, True])
def test_reduction_gradient_and_forward_over_each_axis(name, axis, keepdims):
    op, reference = REDUCTIONS[name]
    check_gradient(lambda x: op(x, axis=axis, keepdims=keepdims), X3)
    np.testing.assert_allclose(op(X3, axis=axis, keepdims=keepdims),
                               reference(X3, axis=axis, keepdims=keepdims), rtol=1e-12)


def test_max_splits_the_gradient_between_ties():
    v = Variable(np.array([[1.0, 3.0, 3.0]]), dtype="float64")
    with GradientTape() as tape:
        loss = ops.max(v)
    np.testing.assert_array_equal(tape.gradient(loss, [v])[0], [[0, 0.5, 0.5]])


@pytest.mark.parametrize("zeros", [[1], [0, 2]])
def test_prod_gradient_is_exact_with_zeros(zeros):
    x = normal(2, 3)
    x[0, zeros] = 0.0
    check_gradient(lambda v: ops.prod(v, axis=1), x)
    check_gradient(lambda v: ops.cumprod(v, axis=1), x)
    check_gradient(lambda v: ops.segment_prod(v, np.array([0, 0])), x)


@pytest.mark.parametrize("axis", [None, 0, 2])
def test_cumulative_gradients(axis):
    check_gradient(lambda x: ops.cumsum(x, axis=axis), X3)
    check_gradient(lambda x: ops.cumprod(x, axis=axis), X3)
    np.testing.assert_allclose(ops.cumsum(X3, axis=axis), np.cumsum(X3, axis=axis))
    np.testing.assert_allclose(ops.cumprod(X3, axis=axis), np.cumprod(X3, axis=axis))


NAN_X = normal(3, 4)
NAN_X[0, 1] = NAN_X[2, 3] = np.nan


@pytest.mark.parametrize("name", ["nansum", "nanmean", "nanmax", "nanmin", "nanprod", "nanvar",
                                  "nanstd", "nanmedian"])
@pytest.mark.parametrize("axis", [None, 0, 1])
def test_nan_reductions_ignore_nan_in_value_and_gradient(name, axis):
    op = getattr(ops, name)
    np.testing.assert_allclose(op(NAN_X, axis=axis), getattr(np, name)(NAN_X, axis=axis),
                               rtol=1e-12)
    clean = np.where(np.isnan(NAN_X), 0.0, NAN_X)
    mask = np.isnan(NAN_X)

    def fn(x):
        return op(ops.where(mask, np.nan, x), axis=axis)
    check_gradient(fn, clean)


@pytest.mark.parametrize("method", ["linear", "lower", "higher", "midpoint", "nearest"])
@pytest.mark.parametrize("axis", [None, 1])
def test_quantile_gradient_and_forward(method, axis):
    q = np.array([0.1, 0.5, 0.8])
    check_gradient(lambda x: ops.quantile(x, q, axis=axis, method=method), X3)
    np.testing.assert_allclose(ops.quantile(X3, q, axis=axis, method=method),
                               np.quantile(X3, q, axis=axis, method=method), rtol=1e-12)
    np.testing.assert_allclose(ops.percentile(X3, 100 * q, axis=axis, method=method,
                                              keepdims=True),
                               np.percentile(X3, 100 * q, axis=axis, method=method,
                                             keepdims=True), rtol=1e-12)


def test_nanquantile_gradient():
    mask = np.isnan(NAN_X)
    check_gradient(lambda x: ops.nanquantile(ops.where(mask, np.nan, x), 0.3, axis=1),
                   np.where(mask, 0, NAN_X))
    np.testing.assert_allclose(ops.nanpercentile(NAN_X, 30, axis=0),
                               np.nanpercentile(NAN_X, 30, axis=0))


def test_average_gradient_in_values_and_weights():
    w = positive(3)
    check_gradient(lambda x, v: ops.average(x, axis=1, weights=v), A, w)
    np.testing.assert_allclose(ops.average(A, axis=1, weights=w), np.average(A, axis=1,
                                                                             weights=w))
    np.testing.assert_allclose(ops.average(A), np.average(A))


@pytest.mark.parametrize("ord_axis", [(None, None), (2, 1), (1, 0), (np.inf, 1), (-np.inf, 1),
                                      (3, 1), (0.5, 1), ("fro", (0, 1)), ("nuc", (0, 1)),
                                      (1, (0, 1)), (-1, (0, 1)), (np.inf, (0, 1)),
                                      (-np.inf, (1, 0)), (2, (0, 1)), (-2, (0, 1))], ids=str)
def test_norm_gradient_and_forward(ord_axis):
    order, axis = ord_axis
    x = normal(3, 4)
    check_gradient(lambda v: ops.norm(v, ord=order, axis=axis), x)
    np.testing.assert_allclose(ops.norm(x, ord=order, axis=axis),
                               np.linalg.norm(x, ord=order, axis=axis), rtol=1e-12)
    np.testing.assert_allclose(ops.norm(x, ord=order, axis=axis, keepdims=True),
                               np.linalg.norm(x, ord=order, axis=axis, keepdims=True), rtol=1e-12)


def test_reduction_dtypes_follow_keras():
    ints = np.arange(6, dtype=np.int8).reshape(2, 3)
    assert ops.sum(ints).dtype == np.int32
    assert ops.sum(np.ones(3, np.uint8)).dtype == np.uint32
    assert ops.mean(ints).dtype == np.float32
    assert ops.mean(np.arange(3)).dtype == np.float32
    assert ops.var(np.arange(3, dtype=np.int32)).dtype == np.float32
    assert ops.prod(np.ones(2, bool)).dtype == np.int32
    assert ops.max(ints).dtype == np.int8
    assert ops.argmax(A).dtype == np.int32
    assert ops.cumsum(np.ones(2, bool)).dtype == np.int32


# ----------------------------------------------------------------------------- shapes

SHAPE_OPS = {
    "reshape": lambda x: ops.reshape(x, (4, -1)),
    "transpose": lambda x: ops.transpose(x, (2, 0, 1)),
    "transpose default": ops.transpose,
    "moveaxis": lambda x: ops.moveaxis(x, 0, -1),
    "swapaxes": lambda x: ops.swapaxes(x, 0, 2),
    "expand_dims": lambda x: ops.expand_dims(x, (0, 2)),
    "squeeze": lambda x: ops.squeeze(ops.expand_dims(x, 1), 1),
    "ravel": ops.ravel,
    "broadcast_to": lambda x: ops.broadcast_to(x[:, :1], (3, 2, 3, 4)),
    "tile": lambda x: ops.tile(x, (2, 1, 2)),
    "repeat": lambda x: ops.repeat(x, 2, axis=1),
    "repeat counts": lambda x: ops.repeat(x, [1, 0, 3], axis=1),
    "repeat flat": lambda x: ops.repeat(x, 2),
    "flip": lambda x: ops.flip(x, axis=(0, 2)),
    "fliplr": ops.fliplr, "flipud": ops.flipud,
    "rot90": lambda x: ops.rot90(x, k=3, axes=(1, 2)),
    "roll": lambda x: ops.roll(x, (1, -2), axis=(0, 2)),
    "roll flat": lambda x: ops.roll(x, 5),
    "pad constant": lambda x: ops.pad(x, ((0, 1), (2, 0), (1, 1)), constant_values=3.0),
    "pad reflect": lambda x: ops.pad(x, ((1, 1), (2, 1), (0, 2)), mode="reflect"),
    "pad symmetric": lambda x: ops.pad(x, ((1, 1), (2, 2), (0, 3)), mode="symmetric"),
    "pad edge": lambda x: ops.pad(x, 2, mode="edge"),
    "pad wrap": lambda x: ops.pad(x, ((0, 0), (1, 3), (2, 0)), mode="wrap"),
    "take": lambda x: ops.take(x, np.array([[2, 0], [2, -1]]), axis=1),
    "take flat": lambda x: ops.take(x, np.array([0, 5, 5, 23])),
    "take_along_axis": lambda x: ops.take_along_axis(x, np.array([[[0, 3, 3]]]), axis=2),
    "get_item basic": lambda x: x[1, ::2, None, 1:],
    "get_item ellipsis": lambda x: x[..., -1],
    "get_item repeated": lambda x: x[np.array([0, 0, 1]), :, np.array([3, 3, 0])],
    "get_item mask": lambda x: x[x > 0],
    "tril": lambda x: ops.tril(x, k=-1), "triu": lambda x: ops.triu(x, k=1),
    "diagonal": lambda x: ops.diagonal(x, offset=1, axis1=1, axis2=2),
    "trace": lambda x: ops.trace(x, offset=-1, axis1=0, axis2=2),
    "sort": lambda x: ops.sort(x, axis=1), "sort flat": lambda x: ops.sort(x, axis=None),
    "top_k": lambda x: ops.top_k(x, 2)[0],
    "diff": lambda x: ops.diff(x, n=2, axis=2),
    "slice": lambda x: ops.slice(x, (1, 0, 1), (1, 2, 3)),
    "unstack": lambda x: ops.unstack(x, axis=1)[2],
    "split": lambda x: ops.split(x, [1, 3], axis=2)[1],
    "array_split": lambda x: ops.array_split(x, 3, axis=2)[0],
    "hsplit": lambda x: ops.hsplit(x, 3)[1], "vsplit": lambda x: ops.vsplit(x, 2)[1],
    "dsplit": lambda x: ops.dsplit(x, [1])[1],
    "extract_sequences": lambda x: ops.extract_sequences(x, 2, 1),
    "rearrange": lambda x: ops.rearrange(x, "a b (c d) -> (a c) d b", d=2),
    "trapezoid": lambda x: ops.trapezoid(x, dx=0.5, axis=1),
}


@pytest.mark.parametrize("name", sorted(SHAPE_OPS))
def test_shape_op_gradient(name):
    check_gradient(SHAPE_OPS[name], X3)


SHAPE_REFERENCES = {
    "reshape": lambda x: x.reshape(4, -1), "transpose": lambda x: x.transpose(2, 0, 1),
    "moveaxis": lambda x: np.moveaxis(x, 0, -1), "tile": lambda x: np.tile(x, (2, 1, 2)),
    "repeat counts": lambda x: np.repeat(x, [1, 0, 3], axis=1),
    "rot90": lambda x: np.rot90(x, 3, (1, 2)),
    "roll": lambda x: np.roll(x, (1, -2), axis=(0, 2)),
    "pad reflect": lambda x: np.pad(x, ((1, 1), (2, 1), (0, 2)), mode="reflect"),
    "pad constant": lambda x: np.pad(x, ((0, 1), (2, 0), (1, 1)), constant_values=3.0),
    "take": lambda x: np.take(x, [[2, 0], [2, -1]], axis=1),
    "get_item repeated": lambda x: x[[0, 0, 1], :, [3, 3, 0]],
    "diagonal": lambda x: np.diagonal(x, 1, 1, 2),
    "trace": lambda x: np.trace(x, -1, 0, 2), "sort": lambda x: np.sort(x, axis=1),
    "diff": lambda x: np.diff(x, 2, axis=2), "slice": lambda x: x[1:2, 0:2, 1:4],
    "extract_sequences": lambda x: np.stack([x[..., i:i + 2] for i in range(3)], axis=-2),
    "rearrange": lambda x: x.reshape(2, 3, 2, 2).transpose(0, 2, 3, 1).reshape(4, 2, 3),
    "trapezoid": lambda x: np.trapezoid(x, dx=0.5, axis=1),
    "top_k": lambda x: -np.sort(-x, axis=-1)[..., :2],
}


@pytest.mark.parametrize("name", sorted(SHAPE_REFERENCES))
def test_shape_op_forward_matches_numpy(name):
    np.testing.assert_allclose(SHAPE_OPS[name](X3), SHAPE_REFERENCES[name](X3), rtol=1e-12)


JOINS = {
    "concatenate": (lambda x, y: ops.concatenate([x, y], axis=1),
                    lambda x, y: np.concatenate([x, y], axis=1)),
    "concatenate flat": (lambda x, y: ops.concatenate([x, y], axis=None),
                         lambda x, y: np.concatenate([x, y], axis=None)),
    "stack": (lambda x, y: ops.stack([x, y], axis=1), lambda x, y: np.stack([x, y], axis=1)),
    "hstack": (lambda x, y: ops.hstack([x, y]), lambda x, y: np.hstack([x, y])),
    "vstack": (lambda x, y: ops.vstack([x, y]), lambda x, y: np.vstack([x, y])),
    "dstack": (lambda x, y: ops.dstack([x, y]), lambda x, y: np.dstack([x, y])),
    "column_stack": (lambda x, y: ops.column_stack([x[0], ops.transpose(y)]),
                     lambda x, y: np.column_stack([x[0], y.T])),
    "append": (ops.append, np.append),
    "append axis": (lambda x, y: ops.append(x, y, axis=0), lambda x, y: np.append(x, y, axis=0)),
}


@pytest.mark.parametrize("name", sorted(JOINS))
def test_joining_op_gradient_and_forward(name):
    op, reference = JOINS[name]
    a, b = normal(2, 3), normal(2, 3)
    check_gradient(op, a, b)
    np.testing.assert_array_equal(op(a, b), reference(a, b))


def test_meshgrid_gradient_and_forward():
    x, y, z = normal(3), normal(2), normal(4)
    for indexing in ("xy", "ij"):
        grids = ops.meshgrid(x, y, z, indexing=indexing)
        for got, expected in zip(grids, np.meshgrid(x, y, z, indexing=indexing)):
            np.testing.assert_array_equal(got, expected)
        check_gradient(lambda a, b: ops.meshgrid(a, b, indexing=indexing)[0] *
                       ops.meshgrid(a, b, indexing=indexing)[1], x, y)


@pytest.mark.parametrize("k", [-1, 0, 2])
def test_diag_and_diagflat_gradients(k):
    check_gradient(lambda x: ops.diag(x, k=k), normal(3))
    check_gradient(lambda x: ops.diag(x, k=k), normal(3, 4))
    check_gradient(lambda x: ops.diagflat(x, k=k), normal(2, 2))
    np.testing.assert_array_equal(ops.diag(A, k=k), np.diag(A, k=k))


def test_slice_update_scatter_and_scatter_update_gradients():
    x, u = normal(4, 3), normal(2, 2)
    check_gradient(lambda a, b: ops.slice_update(a, (1, 1), b), x, u)
    expected = x.copy()
    expected[1:3, 1:3] = u
    np.testing.assert_array_equal(ops.slice_update(x, (1, 1), u), expected)
    indices = np.array([[0, 1], [2, 2], [0, 1]])
    check_gradient(lambda v: ops.scatter(indices, v, (3, 4)), normal(3))
    dense = np.zeros((3, 4))
    np.add.at(dense, (indices[:, 0], indices[:, 1]), [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(ops.scatter(indices, [1.0, 2.0, 3.0], (3, 4)), dense)
    rows = np.array([[0], [2]])
    for reduction in (None, "add"):
        check_gradient(lambda a, b: ops.scatter_update(a, rows, b, reduction=reduction),
                       x, normal(2, 3))
    np.testing.assert_array_equal(ops.scatter_update(x, rows, np.zeros((2, 3)))[[0, 2]], 0)


@pytest.mark.parametrize("op", ["segment_sum", "segment_max", "segment_min", "segment_prod"])
def test_segment_reduction_gradient_and_forward(op):
    data, ids = normal(5, 2), np.array([1, 0, 2, -1, 1])
    check_gradient(lambda d: getattr(ops, op)(d, ids, num_segments=3), data)
    ufunc = {"segment_sum": np.add, "segment_max": np.maximum, "segment_min": np.minimum,
             "segment_prod": np.multiply}[op]
    initial = {"segment_sum": 0, "segment_max": -np.inf, "segment_min": np.inf,
               "segment_prod": 1}[op]
    expected = np.full((3, 2), initial, float)
    for row, segment in zip(data, ids):
        if segment >= 0:
            expected[segment] = ufunc(expected[segment], row)
    np.testing.assert_allclose(getattr(ops, op)(data, ids, num_segments=3), expected)


def test_bincount_is_differentiable_in_the_weights():
    x = np.array([0, 2, 2, 5])
    check_gradient(lambda w: ops.bincount(x, weights=w, minlength=7), normal(4))
    np.testing.assert_array_equal(ops.bincount(x), np.bincount(x))
    assert ops.bincount(x).dtype == np.int32


# ----------------------------------------------------------------------------- products

PRODUCTS = {
    "matmul 2-D": (ops.matmul, normal(2, 3), normal(3, 4)),
    "matmul batched broadcast": (ops.matmul, normal(2, 1, 2, 3), normal(3, 3, 2)),
    "matmul vector-matrix": (ops.matmul, normal(3), normal(2, 3, 4)),
    "matmul matrix-vector": (ops.matmul, normal(2, 3), normal(3)),
    "matmul vector-vector": (ops.matmul, normal(3), normal(3)),
    "dot N-D": (ops.dot, normal(2, 3, 4), normal(5, 4, 2)),
    "dot scalar": (ops.dot, normal(), normal(3)),
    "tensordot int": (lambda a, b: ops.tensordot(a, b, 1), normal(2, 3), normal(3, 4)),
    "tensordot unsorted axes": (lambda a, b: ops.tensordot(a, b, axes=([2, 0], [0, 2])),
                                normal(2, 3, 4), normal(4, 5, 2)),
    "inner": (ops.inner, normal(2, 3), normal(4, 3)),
    "outer": (ops.outer, normal(2, 3), normal(4)),
    "vdot": (ops.vdot, normal(2, 3), normal(6)),
    "kron": (ops.kron, normal(2, 3), normal(2, 2)),
    "kron mixed ranks": (ops.kron, normal(3), normal(2, 2)),
    "cross 3-vectors": (ops.cross, normal(4, 3), normal(4, 3)),
    "cross 2-vectors": (ops.cross, normal(4, 2), normal(4, 2)),
    "cross axes": (lambda a, b: ops.cross(a, b, axisa=0, axisb=1, axisc=0), normal(3, 2),
                   normal(2, 3)),
    "einsum matmul": (lambda a, b: ops.einsum("ij,jk->ik", a, b), normal(2, 3), normal(3, 4)),
    "einsum implicit": (lambda a, b: ops.einsum("ij,kj", a, b), normal(2, 3), normal(4, 3)),
    "einsum ellipsis": (lambda a, b: ops.einsum("...ij,...jk->...ik", a, b), normal(2, 2, 3),
                        normal(3, 4)),
    "einsum sum only": (lambda a, b: ops.einsum("ij,j->", a, b), normal(2, 3), normal(3)),
    "einsum diagonal": (lambda a, b: ops.einsum("ii,i->i", a, b), normal(3, 3), normal(3)),
    "einsum summed index": (lambda a, b: ops.einsum("ijk,k->i", a, b), normal(2, 3, 4),
                            normal(4)),
    "correlate valid": (ops.correlate, normal(6), normal(3)),
    "correlate same": (lambda a, b: ops.correlate(a, b, "same"), normal(6), normal(3)),
    "correlate full": (lambda a, b: ops.correlate(a, b, "full"), normal(6), normal(3)),
    "correlate short first": (lambda a, b: ops.correlate(a, b, "full"), normal(3), normal(5)),
}


@pytest.mark.parametrize("name", sorted(PRODUCTS))
def test_product_gradient_and_forward(name):
    op, a, b = PRODUCTS[name]
    check_gradient(op, a, b)
    reference = {"matmul": np.matmul, "dot": np.dot, "inner": np.inner, "outer": np.outer,
                 "vdot": np.vdot, "kron": np.kron, "cross": np.cross}.get(name.split()[0])
    if name == "tensordot unsorted axes":
        reference = lambda a, b: np.tensordot(a, b, axes=([2, 0], [0, 2]))  # noqa: E731
    if name == "cross axes":
        reference = lambda a, b: np.cross(a, b, axisa=0, axisb=1, axisc=0)  # noqa: E731
    if name == "cross 2-vectors":
        reference = lambda a, b: a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]  # noqa: E731
    if name.startswith("einsum"):
        spec = {"einsum matmul": "ij,jk->ik", "einsum implicit": "ij,kj",
                "einsum ellipsis": "...ij,...jk->...ik", "einsum sum only": "ij,j->",
                "einsum diagonal": "ii,i->i", "einsum summed index": "ijk,k->i"}[name]
        reference = lambda a, b: np.einsum(spec, a, b)  # noqa: E731
    if name.startswith("correlate"):
        mode = {"correlate valid": "valid", "correlate same": "same"}.get(name, "full")
        reference = lambda a, b: np.correlate(a, b, mode)  # noqa: E731
    if reference is not None:
        np.testing.assert_allclose(op(a, b), reference(a, b), rtol=1e-10, atol=1e-12)


def test_vander_and_corrcoef():
    x = normal(4)
    check_gradient(lambda v: ops.vander(v, 3), x)
    np.testing.assert_allclose(ops.vander(x, 3, increasing=True), np.vander(x, 3, True))
    m = normal(3, 5)
    check_gradient(ops.corrcoef, m)
    np.testing.assert_allclose(ops.corrcoef(m), np.corrcoef(m), rtol=1e-12)


# ----------------------------------------------------------------------------- linear algebra

def test_linalg_gradients_and_forwards():
    m, b, v = normal(2, 3, 3) + 3 * np.eye(3), normal(2, 3, 2), normal(3)
    check_gradient(ops.inv, m)
    check_gradient(ops.det, m)
    check_gradient(ops.solve, m, b)
    check_gradient(lambda a, c: ops.solve(a, c), m[0], v)
    check_gradient(lambda a, c: ops.solve_triangular(a, c, lower=True), m, b)
    check_gradient(lambda a, c: ops.solve_triangular(a, c), m[0], v)
    check_gradient(lambda a: ops.slogdet(a)[1], m)
    check_gradient(lambda a: ops.svd(a, compute_uv=False), normal(2, 4, 3))
    np.testing.assert_allclose(ops.inv(m), np.linalg.inv(m), rtol=1e-12)
    np.testing.assert_allclose(ops.det(m), np.linalg.det(m), rtol=1e-12)
    np.testing.assert_allclose(ops.solve(m, b), np.linalg.solve(m, b), rtol=1e-12)
    np.testing.assert_allclose(ops.solve_triangular(m, b, lower=True),
                               np.linalg.solve(np.tril(m), b), rtol=1e-12)


def test_symmetric_factorization_gradients():
    square_root = normal(3, 3)

    def spd_of(a):
        return ops.add(ops.matmul(a, ops.transpose(a)), 3 * np.eye(3))
    check_gradient(lambda a: ops.cholesky(spd_of(a)), square_root)
    check_gradient(lambda a: ops.cholesky(spd_of(a), upper=True), square_root)
    check_gradient(lambda a: ops.eigh(spd_of(a))[0], square_root)
    check_gradient(lambda a: ops.eigh(spd_of(a))[1] ** 2, square_root)
    check_gradient(lambda a: ops.logdet(spd_of(a)), square_root)
    check_gradient(lambda a: ops.cholesky_inverse(ops.cholesky(spd_of(a))), square_root)
    s = spd(3)
    np.testing.assert_allclose(ops.cholesky(s), np.linalg.cholesky(s), rtol=1e-12)
    np.testing.assert_allclose(ops.cholesky_inverse(np.linalg.cholesky(s)), np.linalg.inv(s),
                               rtol=1e-10)
    np.testing.assert_allclose(ops.eigh(s)[0], np.linalg.eigh(s)[0], rtol=1e-12)


# ----------------------------------------------------------------------------- nn

@pytest.mark.parametrize("axis", [-1, 0, (0, 1)], ids=str)
@pytest.mark.parametrize("name", ["softmax", "log_softmax", "sparsemax"])
def test_softmax_family(name, axis):
    if name == "sparsemax" and isinstance(axis, tuple):
        return
    op = getattr(ops, name)
    x = 2 * normal(3, 4)
    check_gradient(lambda v: op(v, axis=axis), x)
    shifted = np.exp(x - x.max(axis=axis, keepdims=True))
    probabilities = shifted / shifted.sum(axis=axis, keepdims=True)
    if name == "softmax":
        np.testing.assert_allclose(op(x, axis=axis), probabilities, rtol=1e-12)
    elif name == "log_softmax":
        np.testing.assert_allclose(op(x, axis=axis), np.log(probabilities), rtol=1e-12)
    else:
        out = op(x, axis=axis)
        np.testing.assert_allclose(np.sum(out, axis=axis), 1.0)
        assert np.all(out >= 0)


def test_glu_and_normalizations():
    x = normal(3, 4)
    check_gradient(ops.glu, x)
    np.testing.assert_allclose(ops.glu(x), x[:, :2] * _sigmoid(x[:, 2:]))
    for order in (1, 2, 3):
        check_gradient(lambda v: ops.normalize(v, axis=0, order=order), x)
        np.testing.assert_allclose(ops.normalize(x, order=order),
                                   x / np.linalg.norm(x, ord=order, axis=-1, keepdims=True))
    gamma, beta = positive(4), normal(4)
    check_gradient(lambda v, g, b: ops.layer_normalization(v, g, b, epsilon=1e-3), x, gamma,
                   beta)
    centred = x - x.mean(-1, keepdims=True)
    np.testing.assert_allclose(ops.layer_normalization(x, gamma, beta, epsilon=1e-3),
                               centred / np.sqrt(x.var(-1, keepdims=True) + 1e-3) * gamma + beta,
                               rtol=1e-10)
    check_gradient(lambda v, g: ops.rms_normalization(v, g, epsilon=1e-3), x, gamma)
    np.testing.assert_allclose(ops.rms_normalization(x, gamma, epsilon=1e-3),
                               x / np.sqrt(np.mean(x * x, -1, keepdims=True) + 1e-3) * gamma)


def test_batch_normalization_and_moments():
    x, mean, variance = normal(4, 3), normal(3), positive(3)
    scale, offset = positive(3), normal(3)
    check_gradient(lambda *a: ops.batch_normalization(a[0], a[1], a[2], -1, a[3], a[4]),
                   x, mean, variance, offset, scale)
    np.testing.assert_allclose(ops.batch_normalization(x, mean, variance, 1, offset, scale, 1e-3),
                               (x - mean) / np.sqrt(variance + 1e-3) * scale + offset)
    for axes in ([0], [0, 1]):
        check_gradient(lambda v: ops.moments(v, axes)[1], x)
        check_gradient(lambda v: ops.moments(v, axes, keepdims=True)[0], x)
        m, v = ops.moments(x, axes)
        np.testing.assert_allclose(m, x.mean(tuple(axes)))
        np.testing.assert_allclose(v, x.var(tuple(axes)), rtol=1e-10)


def test_crossentropies_against_their_formulas():
    logits, targets = normal(4, 3), np.eye(3)[[0, 2, 1, 2]]
    labels = np.array([0, 2, 1, 2])
    check_gradient(lambda z: ops.categorical_crossentropy(targets, z, from_logits=True), logits)
    check_gradient(lambda p: ops.categorical_crossentropy(targets, p), positive(4, 3))
    check_gradient(lambda z: ops.sparse_categorical_crossentropy(labels, z, from_logits=True),
                   logits)
    log_p = logits - special.logsumexp(logits, axis=-1, keepdims=True)
    np.testing.assert_allclose(ops.categorical_crossentropy(targets, logits, from_logits=True),
                               -np.sum(targets * log_p, -1))
    np.testing.assert_allclose(ops.sparse_categorical_crossentropy(labels[:, None], logits,
                                                                   from_logits=True),
                               -log_p[np.arange(4), labels])
    p = np.exp(log_p)
    np.testing.assert_allclose(ops.categorical_crossentropy(targets, p * 3),
                               -np.sum(targets * np.log(np.clip(p, 1e-7, 1 - 1e-7)), -1))
    t = uniform(0, 1, 2, 3)
    check_gradient(lambda z: ops.binary_crossentropy(t, z, from_logits=True), 3 * normal(2, 3))
    check_gradient(lambda q: ops.binary_crossentropy(t, q), uniform(0.1, 0.9, 2, 3))
    z = 3 * normal(2, 3)
    np.testing.assert_allclose(ops.binary_crossentropy(t, z, from_logits=True),
                               -(t * np.log(_sigmoid(z)) + (1 - t) * np.log(1 - _sigmoid(z))))


def test_one_hot_and_multi_hot():
    labels = np.array([[0, 2], [1, -1]])
    np.testing.assert_array_equal(ops.one_hot(labels, 3), np.eye(3)[labels] * (labels[..., None]
                                                                               >= 0))
    assert ops.one_hot(labels, 3).dtype == np.float32
    np.testing.assert_array_equal(ops.one_hot(labels, 3, axis=0), np.moveaxis(
        ops.one_hot(labels, 3), -1, 0))
    np.testing.assert_array_equal(ops.multi_hot(np.array([[0, 2], [1, 1]]), 4),
                                  [[1, 0, 1, 0], [0, 1, 0, 0]])


def test_psnr_and_attention():
    a, b = uniform(0, 1, 2, 4), uniform(0, 1, 2, 4)
    check_gradient(lambda x: ops.psnr(x, b, 1.0), a)
    np.testing.assert_allclose(ops.psnr(a, b, 1.0), -10 * np.log10(np.mean((a - b) ** 2)))
    q, k, v = normal(2, 3, 4, 2), normal(2, 5, 2, 2), normal(2, 5, 2, 2)
    check_gradient(lambda *t: ops.dot_product_attention(*t), q, k, v)
    check_gradient(lambda *t: ops.dot_product_attention(*t, is_causal=True), q, normal(2, 3, 2, 2),
                   normal(2, 3, 2, 2))
    mask = RNG.uniform(size=(2, 4, 3, 5)) > 0.3
    mask[..., 0] = True
    out = ops.dot_product_attention(q, k, v, mask=mask)
    kk, vv = np.repeat(k, 2, axis=2), np.repeat(v, 2, axis=2)
    logits = np.einsum("btnh,bsnh->bnts", q, kk) / np.sqrt(2)
    logits = np.where(mask, logits, -np.inf)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    np.testing.assert_allclose(out, np.einsum("bnts,bsnh->btnh", probs, vv), rtol=1e-10)


CONVS = {
    "conv valid": (lambda x, w: ops.conv(x, w), (2, 5, 6, 2), (3, 2, 2, 3)),
    "conv same strided": (lambda x, w: ops.conv(x, w, 2, "same"), (1, 5, 6, 2), (3, 3, 2, 2)),
    "conv dilated": (lambda x, w: ops.conv(x, w, dilation_rate=2), (1, 6, 6, 1), (2, 2, 1, 2)),
    "conv 1-D": (lambda x, w: ops.conv(x, w, 2, "same"), (2, 7, 2), (3, 2, 3)),
    "conv grouped": (lambda x, w: ops.conv(x, w), (1, 4, 4, 4), (2, 2, 2, 4)),
    "conv channels_first": (lambda x, w: ops.conv(x, w, data_format="channels_first"),
                            (1, 2, 5, 5), (3, 3, 2, 2)),
    "depthwise_conv": (lambda x, w: ops.depthwise_conv(x, w, 1, "same"), (2, 5, 4, 2),
                       (3, 2, 2, 2)),
    "depthwise_conv strided dilated": (lambda x, w: ops.depthwise_conv(x, w, 2, dilation_rate=1),
                                       (1, 6, 5, 3), (2, 2, 3, 1)),
    "depthwise_conv 1-D": (lambda x, w: ops.depthwise_conv(x, w), (2, 6, 2), (3, 2, 2)),
    "conv_transpose valid": (lambda x, w: ops.conv_transpose(x, w, 2), (1, 3, 3, 2),
                             (3, 3, 4, 2)),
    "conv_transpose same": (lambda x, w: ops.conv_transpose(x, w, 2, "same"), (2, 3, 2, 2),
                            (3, 2, 3, 2)),
    "conv_transpose stride above kernel": (lambda x, w: ops.conv_transpose(x, w, 3), (1, 2, 2, 1),
                                           (2, 2, 2, 1)),
    "conv_transpose output_padding": (lambda x, w: ops.conv_transpose(x, w, 2, "same", 1),
                                      (1, 3, 3, 1), (3, 3, 2, 1)),
    "conv_transpose 1-D": (lambda x, w: ops.conv_transpose(x, w, 2), (1, 4, 2), (3, 1, 2)),
}


@pytest.mark.parametrize("name", sorted(CONVS))
def test_convolution_gradients(name):
    op, x_shape, w_shape = CONVS[name]
    check_gradient(op, normal(*x_shape), normal(*w_shape))


def _reference_conv(x, w, stride, padding, dilation=1):
    import reference
    kh, kw = w.shape[:2]
    pads = []
    for n, k in zip(x.shape[1:3], (kh, kw)):
        if padding == "same":
            out = -(-n // stride)
            total = max((out - 1) * stride + (k - 1) * dilation + 1 - n, 0)
            pads.append((total // 2, total - total // 2))
        else:
            pads.append((0, 0))
    return reference.conv2d(x, w, np.zeros(w.shape[-1]), (stride, stride), tuple(pads),
                            (dilation, dilation))


def test_convolution_forwards_against_loops():
    x, w = normal(2, 5, 6, 2), normal(3, 2, 2, 3)
    np.testing.assert_allclose(ops.conv(x, w, 2, "same"), _reference_conv(x, w, 2, "same"),
                               rtol=1e-10)
    depthwise = normal(3, 3, 2, 2)
    expected = np.concatenate([_reference_conv(x[..., c:c + 1], depthwise[:, :, c:c + 1], 1,
                                               "same") for c in range(2)], axis=-1)
    np.testing.assert_allclose(ops.depthwise_conv(x, depthwise, 1, "same"), expected, rtol=1e-10)
    grouped = normal(2, 2, 1, 4)
    expected = np.concatenate([_reference_conv(x[..., g:g + 1], grouped[..., 2 * g:2 * g + 2],
                                               1, "valid") for g in range(2)], axis=-1)
    np.testing.assert_allclose(ops.conv(x, grouped), expected, rtol=1e-10)
    x1, w1 = normal(2, 7, 2), normal(3, 2, 3)
    np.testing.assert_allclose(ops.conv(x1, w1), _reference_conv(x1[:, None], w1[None], 1,
                                                                 "valid")[:, 0], rtol=1e-10)


def _transpose_reference(y, w, stride, padding, output_padding, dilation=1):
    """Keras' conv_transpose by scattering: every input pixel adds its kernel-weighted copy at
    stride spacing, then the result is cut to Keras' output size (keras.src.backend.common.
    backend_utils: the JAX padding rule, `left` cells of the dilated kernel's k - 1 kept)."""
    n, h, w_, _ = y.shape
    kh, kw, out_c, _ = w.shape
    k = [(kh - 1) * dilation + 1, (kw - 1) * dilation + 1]
    full = np.zeros((n, (h - 1) * stride + k[0], (w_ - 1) * stride + k[1], out_c))
    for i in range(h):
        for j in range(w_):
            for p in range(kh):
                for q in range(kw):
                    full[:, i * stride + p * dilation, j * stride + q * dilation] += \
                        y[:, i, j] @ w[p, q].T
    sizes, starts = [], []
    for length, kk in zip((h, w_), k):
        if padding == "valid":
            extra = max(kk, stride) - kk if output_padding is None else output_padding
            left, right = kk - 1, kk - 1 + extra
        else:
            total = stride + kk - 2 if output_padding is None else \
                kk + kk % 2 - 2 + output_padding
            left = min(total // 2 + total % 2, kk - 1)
            right = total - left
        sizes.append((length - 1) * stride + left + right - kk + 2)
        starts.append(kk - 1 - left)
    out = np.zeros((n, sizes[0], sizes[1], out_c))
    rows = min(sizes[0], full.shape[1] - starts[0])
    cols = min(sizes[1], full.shape[2] - starts[1])
    out[:, :rows, :cols] = full[:, starts[0]:starts[0] + rows, starts[1]:starts[1] + cols]
    return out


@pytest.mark.parametrize("padding,strides,output_padding,dilation",
                         [("valid", 2, None, 1), ("valid", 3, None, 1), ("same", 2, None, 1),
                          ("same", 2, 1, 1), ("valid", 1, None, 2), ("same", 3, 0, 1),
                          ("valid", 2, 1, 1), ("same", 1, None, 2)])
def test_conv_transpose_against_a_scattering_loop(padding, strides, output_padding, dilation):
    y, w = normal(2, 3, 4, 2), normal(3, 2, 4, 2)
    np.testing.assert_allclose(ops.conv_transpose(y, w, strides, padding, output_padding,
                                                  dilation_rate=dilation),
                               _transpose_reference(y, w, strides, padding, output_padding,
                                                    dilation), rtol=1e-10, atol=1e-12)


POOLS = {
    "max_pool": lambda x: ops.max_pool(x, 2), "max_pool same": lambda x: ops.max_pool(
        x, 3, 2, "same"), "average_pool": lambda x: ops.average_pool(x, (2, 3), 1),
    "average_pool same": lambda x: ops.average_pool(x, 3, 2, "same"),
    "max_pool 1-D": lambda x: ops.max_pool(x[:, 0], 2),
    "average_pool channels_first": lambda x: ops.average_pool(x, 2,
                                                              data_format="channels_first"),
    "adaptive_average_pool": lambda x: ops.adaptive_average_pool(x, (2, 3)),
    "adaptive_max_pool": lambda x: ops.adaptive_max_pool(x, 2),
}


@pytest.mark.parametrize("name", sorted(POOLS))
def test_pooling_gradients(name):
    check_gradient(POOLS[name], normal(2, 5, 6, 2))


def test_pooling_forwards_against_loops():
    import reference
    x = normal(2, 5, 6, 2)
    # "same" for 3x3 stride 2: (1, 1) rows and (0, 1) columns (the odd cell after)
    np.testing.assert_allclose(ops.average_pool(x, 3, 2, "same"),
                               reference.avg_pool2d(x, (3, 3), (2, 2), ((1, 1), (0, 1))))
    np.testing.assert_allclose(ops.max_pool(x, 3, 2, "same"),
                               reference.max_pool2d(x, (3, 3), (2, 2), ((1, 1), (0, 1)))[0])
    y = ops.adaptive_average_pool(x, (2, 3))
    np.testing.assert_allclose(y[:, 0, 0], x[:, 0:3, 0:2].mean(axis=(1, 2)))
    np.testing.assert_allclose(y[:, 1, 2], x[:, 2:5, 4:6].mean(axis=(1, 2)))
    np.testing.assert_allclose(ops.adaptive_max_pool(x, 2)[:, 1, 0],
                               x[:, 2:5, 0:3].max(axis=(1, 2)))


def test_depth_space_unfold_fold():
    x = normal(2, 2, 3, 8)
    check_gradient(lambda v: ops.depth_to_space(v, 2), x)
    np.testing.assert_array_equal(ops.space_to_depth(ops.depth_to_space(x, 2), 2), x)
    check_gradient(lambda v: ops.space_to_depth(v, 2, "channels_first"), normal(1, 2, 4, 4))
    image = normal(2, 3, 5, 4)
    columns = ops.unfold(image, (2, 3), padding=1, stride=(2, 1))
    check_gradient(lambda v: ops.unfold(v, 2, dilation=2), image)
    assert columns.shape == (2, 3 * 6, 3 * 4)
    np.testing.assert_array_equal(columns[:, 0 * 6 + 1 * 3 + 2, 1 * 4 + 2],
                                  np.pad(image, ((0, 0), (0, 0), (1, 1), (1, 1)))[:, 0, 3, 4])
    check_gradient(lambda c: ops.fold(c, (5, 4), (2, 3), padding=1, stride=(2, 1)),
                   np.asarray(columns))
    # fold is unfold's adjoint
    other = normal(*columns.shape)
    np.testing.assert_allclose(np.sum(columns * other), np.sum(
        image * ops.fold(other, (5, 4), (2, 3), padding=1, stride=(2, 1))))


# ----------------------------------------------------------------------------- image

def test_resize_bilinear_matches_half_pixel_interpolation():
    x = normal(1, 3, 4, 2)
    out = ops.image.resize(x, (6, 8))
    # half-pixel centres: output row i samples input row (i + 0.5) / 2 - 0.5, clamped
    rows = np.clip((np.arange(6) + 0.5) / 2 - 0.5, 0, 2)
    cols = np.clip((np.arange(8) + 0.5) / 2 - 0.5, 0, 3)

    def lerp(a, positions, axis):
        lo = np.floor(positions).astype(int)
        hi = np.minimum(lo + 1, a.shape[axis] - 1)
        frac = (positions - lo).reshape([-1 if i == axis else 1 for i in range(a.ndim)])
        return np.take(a, lo, axis) * (1 - frac) + np.take(a, hi, axis) * frac
    np.testing.assert_allclose(out, lerp(lerp(x, rows, 1), cols, 2), rtol=1e-10)
    np.testing.assert_array_equal(ops.image.resize(x, (2, 2), "nearest"), x[:, [0, 2]][:, :,
                                                                                   [1, 3]])


@pytest.mark.parametrize("interpolation,antialias,size", [("bilinear", False, (5, 3)),
                                                          ("bicubic", False, (6, 7)),
                                                          ("lanczos3", True, (2, 3)),
                                                          ("nearest", False, (5, 6)),
                                                          ("bilinear", True, (2, 2))])
def test_resize_gradient(interpolation, antialias, size):
    check_gradient(lambda v: ops.image.resize(v, size, interpolation, antialias),
                   normal(2, 3, 4, 2))


def test_resize_to_aspect_ratio():
    x = normal(1, 4, 8, 1)
    assert ops.image.resize(x, (2, 2), crop_to_aspect_ratio=True).shape == (1, 2, 2, 1)
    np.testing.assert_array_equal(ops.image.resize(x, (4, 4), "nearest",
                                                   crop_to_aspect_ratio=True), x[:, :, 2:6])
    padded = ops.image.resize(x, (8, 8), "nearest", pad_to_aspect_ratio=True, fill_value=5.0)
    np.testing.assert_array_equal(padded[:, :2], 5.0)


def test_map_coordinates_and_affine_transform():
    image = normal(4, 5)
    coordinates = np.stack([uniform(-1, 5, 3, 2), uniform(-1, 6, 3, 2)])
    for mode in ("constant", "nearest", "wrap", "mirror", "reflect"):
        check_gradient(lambda v, c: ops.image.map_coordinates(v, c, 1, mode, 0.5), image,
                       coordinates)
        check_gradient(lambda v: ops.image.map_coordinates(v, coordinates, 0, mode), image)
    inside = np.stack([uniform(0, 3, 6), uniform(0, 4, 6)])
    from scipy import ndimage
    np.testing.assert_allclose(ops.image.map_coordinates(image, inside, 1),
                               ndimage.map_coordinates(image, inside, order=1), rtol=1e-10)
    images = normal(2, 3, 4, 1)
    # sampling positions off the integer grid, where bilinear interpolation has kinks
    transform = np.array([[1.07, 0.21, 0.33, -0.13, 0.91, 0.37, 0.0, 0.0],
                          [0.93, -0.11, 0.23, 0.09, 1.03, -0.29, 0.011, 0.017]])
    check_gradient(lambda v, t: ops.image.affine_transform(v, t), images, transform)
    shift = np.array([1, 0, 1, 0, 1, 2, 0, 0.0])  # output (x, y) reads input (x + 1, y + 2)
    moved = ops.image.affine_transform(images, shift, "nearest")
    np.testing.assert_array_equal(moved[:, :1, :3], images[:, 2:3, 1:4])
    np.testing.assert_array_equal(moved[:, 1:], 0)
    np.testing.assert_array_equal(moved[:, :, 3:], 0)


def test_crop_pad_and_colour_ops():
    images = uniform(0, 1, 2, 5, 6, 3)
    check_gradient(lambda v: ops.image.crop_images(v, 1, 2, target_height=3, target_width=3),
                   images)
    np.testing.assert_array_equal(ops.image.crop_images(images, 1, 2, 1, 1),
                                  images[:, 1:4, 2:5])
    padded = ops.image.pad_images(images, 1, 0, target_height=8, target_width=7)
    np.testing.assert_array_equal(padded[:, 1:6, 0:6], images)
    assert padded.shape == (2, 8, 7, 3)
    small = uniform(0, 1, 1, 3, 4, 3)
    check_gradient(ops.image.rgb_to_grayscale, small)
    np.testing.assert_allclose(ops.image.rgb_to_grayscale(images)[..., 0],
                               images @ [0.2989, 0.5870, 0.1140])
    check_gradient(ops.image.rgb_to_hsv, small)
    check_gradient(ops.image.hsv_to_rgb, uniform(0.05, 0.95, 1, 3, 4, 3))
    import colorsys
    hsv = ops.image.rgb_to_hsv(images)
    np.testing.assert_allclose(hsv[0, 0, 0], colorsys.rgb_to_hsv(*images[0, 0, 0]))
    np.testing.assert_allclose(ops.image.hsv_to_rgb(hsv), images, atol=1e-12)


def test_extract_patches_and_gaussian_blur():
    images = normal(2, 5, 6, 2)
    patches = ops.image.extract_patches(images, (2, 3), strides=(2, 2))
    assert patches.shape == (2, 2, 2, 12)
    np.testing.assert_array_equal(patches[0, 1, 1], images[0, 2:4, 2:5].reshape(-1))
    small = normal(1, 4, 5, 2)
    check_gradient(lambda v: ops.image.extract_patches(v, 2), small)
    check_gradient(lambda v: ops.image.gaussian_blur(v, (3, 5), (1.0, 2.0)), small)
    from scipy import signal
    blurred = ops.image.gaussian_blur(images, (3, 3), (1.0, 1.0))
    g = np.exp(-0.5 * np.arange(-1, 2) ** 2)
    kernel = np.outer(g, g) / np.outer(g, g).sum()
    np.testing.assert_allclose(blurred[0, :, :, 1],
                               signal.convolve2d(images[0, :, :, 1], kernel, mode="same"),
                               rtol=1e-10)


# ----------------------------------------------------------------------------- Fourier

def test_fourier_transforms_and_gradients():
    real, imag = normal(2, 8), normal(2, 8)
    z = np.fft.fft(real + 1j * imag)
    got = ops.fft((real, imag))
    np.testing.assert_allclose(got[0] + 1j * got[1], z, rtol=1e-10)
    for fn in (ops.fft, ops.fft2, ops.ifft2):
        check_gradient(lambda r, i: fn((r, i))[0] * 0.3 + fn((r, i))[1], real, imag)
    signal_ = normal(2, 9)
    check_gradient(lambda s: ops.rfft(s)[0] + 2 * ops.rfft(s)[1], signal_)
    check_gradient(lambda s: ops.rfft(s, fft_length=6)[1], signal_)
    np.testing.assert_allclose(ops.rfft(signal_, 12)[0], np.fft.rfft(signal_, 12).real)
    spectrum = np.fft.rfft(signal_[:, :8])
    check_gradient(lambda r, i: ops.irfft((r, i)), spectrum.real, spectrum.imag)
    check_gradient(lambda r, i: ops.irfft((r, i), fft_length=7), spectrum.real, spectrum.imag)
    np.testing.assert_allclose(ops.irfft((spectrum.real, spectrum.imag)), signal_[:, :8],
                               atol=1e-12)
    check_gradient(lambda s: ops.stft(s, 4, 2, 6)[0], normal(2, 10))


def test_stft_matches_framewise_windowed_fft():
    x = normal(16)
    real, imag = ops.stft(x, 4, 2, 4, window="hann", center=False)
    from scipy import signal
    window = signal.get_window("hann", 4)
    frames = np.stack([x[i:i + 4] for i in range(0, 13, 2)])
    np.testing.assert_allclose(real + 1j * imag, np.fft.rfft(frames * window), rtol=1e-10)
    back = ops.istft((real, imag), 4, 2, 4, center=False)
    assert back.shape[-1] == 16


# ----------------------------------------------------------------------------- dtypes

DTYPE_CASES = [
    (lambda: ops.add(np.ones(2, np.int64), np.ones(2, np.float32)), "float32"),
    (lambda: ops.add(np.ones(2, np.float16), 1.5), "float16"),
    (lambda: ops.add(np.ones(2, np.int8), 3), "int8"),
    (lambda: ops.add(np.ones(2, np.int32), 2.5), "float32"),
    (lambda: ops.multiply(np.ones(2, np.uint8), np.ones(2, np.int8)), "int16"),
    (lambda: ops.add(np.ones(2, bool), np.ones(2, bool)), "bool"),
    (lambda: ops.add(np.ones(2, np.float64), np.ones(2, np.float32)), "float64"),
    (lambda: ops.divide(np.ones(2, np.int32), np.ones(2, np.int32)), "float32"),
    (lambda: ops.divide(np.ones(2, np.int64), 2), "float32"),
    (lambda: ops.exp(np.ones(2, np.int64)), "float32"),
    (lambda: ops.sqrt(np.ones(2, np.int8)), "float32"),
    (lambda: ops.cbrt(np.ones(2, np.int64)), "float64"),
    (lambda: ops.matmul(np.ones((2, 2), np.int8), np.ones((2, 2), np.int8)), "int32"),
    (lambda: ops.where(np.ones(2, bool), np.ones(2, np.int32), 1.5), "float32"),
    (lambda: ops.concatenate([np.ones(2, np.int32), np.ones(2, np.float16)]), "float16"),
    (lambda: ops.arange(3), "int32"), (lambda: ops.arange(3.0), "float32"),
    (lambda: ops.full((2,), 3), "float32"), (lambda: ops.convert_to_tensor([1, 2]), "int32"),
    (lambda: ops.convert_to_tensor([1.0, 2]), "float32"),
    (lambda: ops.linspace(0, 1, 3), "float32"), (lambda: ops.floor(np.ones(2, np.int32)),
                                                  "float32"),
]


@pytest.mark.parametrize("case", range(len(DTYPE_CASES)))
def test_ops_follow_keras_dtype_rules(case):
    make, expected = DTYPE_CASES[case]
    assert backend.standardize_dtype(make().dtype) == expected


def test_result_type_table():
    assert backend.result_type("int64", "float32") == "float32"
    assert backend.result_type("uint8", "int8") == "int16"
    assert backend.result_type("uint32", "int32") == "int64"
    assert backend.result_type("bool", int) == "int32"
    assert backend.result_type("float16", float) == "float16"
    assert backend.result_type(int, float) == "float32"
    assert backend.result_type("int64", "int64") == "int64"
    assert backend.result_type() == "float32"
    assert backend.standardize_dtype(float) == "float32"
    assert backend.standardize_dtype(np.int16) == "int16"
    with pytest.raises(ValueError, match="Invalid dtype"):
        backend.standardize_dtype("float128")
    backend.set_floatx("float64")
    try:
        assert backend.result_type(int, float) == "float64"
        assert ops.full((1,), 1).dtype == np.float64
    finally:
        backend.set_floatx("float32")


# ----------------------------------------------------------------------------- the tape

def test_ops_on_plain_arrays_record_nothing_and_return_arrays():
    out = ops.exp(A)
    assert type(out) is np.ndarray
    with GradientTape():
        assert type(ops.exp(A)) is np.ndarray  # constants: nothing to differentiate


def test_python_operators_and_numpy_protocols_are_recorded():
    v = Variable(normal(2, 3), dtype="float64")
    w = Variable(normal(3), dtype="float64")
    weights = normal(2, 3)
    with GradientTape() as tape:
        y = (-v * 2 + w / 3 - 1) ** 2 @ w + abs(v[:, 0]) + np.sum(np.exp(v), axis=1)
        y = y + np.sum(np.tanh(v) * weights, axis=1) + np.mean(np.concatenate([v, v]), axis=1)[:2]
        loss = np.sum(y)
    gv, gw = tape.gradient(loss, [v, w])

    def f(a, b):
        y = (((-a * 2 + b / 3 - 1) ** 2) @ b + np.abs(a[:, 0]) + np.exp(a).sum(axis=1)
             + np.sum(np.tanh(a) * weights, axis=1) + np.mean(np.concatenate([a, a]), axis=1)[:2])
        return float(np.sum(y))
    np.testing.assert_allclose(gv, numerical_gradient(lambda a: f(a, w.numpy()), v.numpy()),
                               rtol=1e-6)
    np.testing.assert_allclose(gw, numerical_gradient(lambda b: f(v.numpy(), b), w.numpy()),
                               rtol=1e-6)


def test_numpy_calls_without_an_op_are_refused_only_when_they_would_lose_a_gradient():
    v = Variable(normal(3, 3), dtype="float64")
    with GradientTape():
        t = ops.exp(v)
        assert np.shape(t) == (3, 3) and np.ndim(t) == 2
        assert np.array_equal(np.isfinite(t), np.ones((3, 3), bool))
        with pytest.raises(TypeError, match="numpy.gradient.*not recorded"):
            np.gradient(t)
    # Outside a tape Variables go through NumPy itself.
    np.testing.assert_allclose(np.gradient(v), np.gradient(v.numpy()))


def test_stop_gradient_gives_a_zero_gradient_on_purpose():
    v = Variable(normal(3), dtype="float64")
    with GradientTape() as tape:
        loss = ops.sum(ops.stop_gradient(v) * v)
    np.testing.assert_allclose(tape.gradient(loss, [v])[0], v.numpy())


def test_custom_gradient_replaces_the_rule():
    @ops.custom_gradient
    def clipped_identity(x):
        def grad(upstream):
            return ops.clip(upstream, -0.1, 0.1)
        return x * 1.0, grad

    v = Variable(np.array([1.0, 2.0]), dtype="float64")
    with GradientTape() as tape:
        loss = ops.sum(clipped_identity(v) * np.array([5.0, -0.05]))
    np.testing.assert_allclose(tape.gradient(loss, [v])[0], [0.1, -0.05])
    np.testing.assert_array_equal(clipped_identity(np.ones(2)), np.ones(2))


def test_control_flow_runs_eagerly_and_is_differentiable():
    v = Variable(np.array([0.5, 1.5]), dtype="float64")
    with GradientTape() as tape:
        y = ops.fori_loop(0, 3, lambda i, acc: acc * v, ops.ones_like(v))
        z = ops.while_loop(lambda a: ops.sum(a) < 10, lambda a: a * 2, y)
        w = ops.cond(ops.sum(v) > 1, lambda: z + v, lambda: z - v)
        carry, ys = ops.scan(lambda c, x: (c + x, c * x), 0.0, v)
        m = ops.map(lambda x: x * x, v)
        s = ops.associative_scan(lambda a, b: a + b, v)
        loss = ops.sum(w) + carry + ops.sum(ys) + ops.sum(m) + ops.sum(s) + ops.sum(
            ops.vectorized_map(lambda x: ops.sin(x), v))
    grad = tape.gradient(loss, [v])[0]

    def f(a):
        y = a ** 3
        while y.sum() < 10:
            y = y * 2
        return float(np.sum(y + a) + a.sum() + a[0] * a[1] + np.sum(a * a) +
                     np.sum(np.cumsum(a)) + np.sum(np.sin(a)))
    np.testing.assert_allclose(grad, numerical_gradient(f, v.numpy()), rtol=1e-6)
    np.testing.assert_allclose(ops.associative_scan(lambda a, b: a * b, np.arange(1.0, 5.0),
                                                    reverse=True),
                               np.cumprod(np.arange(4.0, 0, -1))[::-1])


# ----------------------------------------------------------------------------- functional models

def test_a_functional_model_of_ops_builds_trains_saves_and_loads():
    inputs = keras.Input((6,))
    x = layers.Dense(8)(inputs)
    x = ops.relu(x) * 2 - ops.mean(x, axis=-1, keepdims=True)
    x = ops.concatenate([x[:, :4], ops.tanh(x[:, 4:])], axis=-1)
    x = ops.reshape(x, (-1, 2, 4))
    x = ops.sum(x, axis=1) + np.array([0.1, 0.2, 0.3, 0.4], np.float32)
    outputs = layers.Dense(3, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    assert model.output_shape == (None, 3)
    model.compile("adam", "sparse_categorical_crossentropy")
    data = RNG.standard_normal((16, 6)).astype(np.float32)
    labels = RNG.integers(0, 3, 16)
    before = [w.copy() for w in model.get_weights()]
    model.train_on_batch(data, labels)
    assert not np.array_equal(model.get_weights()[0], before[0])
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "ops.convnet")
        model.save(path)
        loaded = keras.load_model(path)
    np.testing.assert_allclose(loaded.predict(data, verbose=0), model.predict(data, verbose=0),
                               rtol=1e-6)
    loaded.train_on_batch(data, labels)


def test_operation_loading_accepts_only_public_ops():
    from convnet.ops.operation import Operation
    assert Operation.from_config({"op": "image.resize", "args": [{"__tensor__": 0}, [2, 2]],
                                  "kwargs": {}}).fn is ops.image.resize
    for name in ("os.system", "_base.apply", "convert_to_numpy", "numpy.sum.__globals__"):
        with pytest.raises(ValueError, match="unknown op"):
            Operation.from_config({"op": name, "args": [], "kwargs": {}})


SYMBOLIC = {**{f"unary {k}": (fn, x) for k, (fn, x) in UNARY.items()},
            **{f"shape {k}": (fn, X3) for k, fn in SHAPE_OPS.items()
               if k not in ("get_item mask", "unstack")},
            **{f"reduction {k}": ((lambda op: lambda x: op(x, axis=1))(op), X3)
               for k, (op, _) in REDUCTIONS.items()},
            "conv": (lambda x: ops.conv(x, np.ones((2, 2, 2, 3))), normal(2, 4, 5, 2)),
            "resize": (lambda x: ops.image.resize(x, (3, 7)), normal(2, 4, 5, 2)),
            "norm": (lambda x: ops.norm(x, axis=(1, 2)), X3),
            "inv": (ops.inv, normal(2, 3, 3) + 3 * np.eye(3)),
            "moments": (lambda x: ops.moments(x, [1])[1], X3),
            "split": (lambda x: ops.split(x, 2, axis=-1)[1], X3)}


@pytest.mark.parametrize("name", sorted(SYMBOLIC))
def test_every_op_builds_a_functional_model_with_the_eager_result(name):
    fn, x = SYMBOLIC[name]
    inputs = keras.Input(batch_shape=x.shape, dtype="float64")
    outputs = fn(inputs)
    assert isinstance(outputs, KerasTensor)
    model = keras.Model(inputs, outputs)
    expected = np.asarray(fn(x))
    assert tuple(outputs.shape) == expected.shape
    np.testing.assert_allclose(model(x), expected, rtol=1e-12)


I1, I2 = np.array([[3, -2, 7], [0, 5, -8]]), np.array([2, 3, -4])
F = np.array([[1.5, -0.0, np.nan], [np.inf, -np.inf, 2.5]])
NOT_DIFFERENTIABLE = {
    "equal": (lambda: ops.equal(I1, I2), lambda: np.equal(I1, I2)),
    "not_equal": (lambda: ops.not_equal(I1, I2), lambda: I1 != I2),
    "less": (lambda: ops.less(I1, I2), lambda: I1 < I2),
    "less_equal": (lambda: ops.less_equal(I1, 2.5), lambda: I1 <= 2.5),
    "greater": (lambda: ops.greater(A, ROW), lambda: A > ROW),
    "greater_equal": (lambda: ops.greater_equal(A, 0), lambda: A >= 0),
    "logical_and": (lambda: ops.logical_and(I1, I2 > 0), lambda: np.logical_and(I1, I2 > 0)),
    "logical_or": (lambda: ops.logical_or(I1 > 0, I2 > 0), lambda: (I1 > 0) | (I2 > 0)),
    "logical_xor": (lambda: ops.logical_xor(I1 > 0, I2 > 0), lambda: (I1 > 0) ^ (I2 > 0)),
    "logical_not": (lambda: ops.logical_not(I1), lambda: np.logical_not(I1)),
    "bitwise_and": (lambda: ops.bitwise_and(I1, I2), lambda: I1 & I2),
    "bitwise_or": (lambda: ops.bitwise_or(I1, I2), lambda: I1 | I2),
    "bitwise_xor": (lambda: ops.bitwise_xor(I1, I2), lambda: I1 ^ I2),
    "bitwise_invert": (lambda: ops.bitwise_invert(I1), lambda: ~I1),
    "bitwise_not": (lambda: ops.bitwise_not(I1), lambda: ~I1),
    "left_shift": (lambda: ops.left_shift(I1, 2), lambda: I1 << 2),
    "bitwise_left_shift": (lambda: ops.bitwise_left_shift(I1, abs(I2)), lambda: I1 << abs(I2)),
    "right_shift": (lambda: ops.right_shift(I1, 1), lambda: I1 >> 1),
    "bitwise_right_shift": (lambda: ops.bitwise_right_shift(I1, abs(I2)),
                            lambda: I1 >> abs(I2)),
    "gcd": (lambda: ops.gcd(I1, I2), lambda: np.gcd(I1, I2)),
    "lcm": (lambda: ops.lcm(I1, I2), lambda: np.lcm(I1, I2)),
    "floor_divide": (lambda: ops.floor_divide(A, ROW), lambda: np.floor_divide(A, ROW)),
    "isnan": (lambda: ops.isnan(F), lambda: np.isnan(F)),
    "isinf": (lambda: ops.isinf(F), lambda: np.isinf(F)),
    "isfinite": (lambda: ops.isfinite(F), lambda: np.isfinite(F)),
    "isneginf": (lambda: ops.isneginf(F), lambda: np.isneginf(F)),
    "isposinf": (lambda: ops.isposinf(F), lambda: np.isposinf(F)),
    "isreal": (lambda: ops.isreal(F), lambda: np.isreal(F)),
    "signbit": (lambda: ops.signbit(F), lambda: np.signbit(F)),
    "isclose": (lambda: ops.isclose(A, A + 1e-9), lambda: np.isclose(A, A + 1e-9)),
    "isin": (lambda: ops.isin(I1, I2), lambda: np.isin(I1, I2)),
    "sign": (lambda: ops.sign(A), lambda: np.sign(A)),
    "floor": (lambda: ops.floor(A), lambda: np.floor(A)),
    "ceil": (lambda: ops.ceil(A), lambda: np.ceil(A)),
    "trunc": (lambda: ops.trunc(A), lambda: np.trunc(A)),
    "round": (lambda: ops.round(A * 10, -1), lambda: np.round(A * 10, -1)),
    "argmin": (lambda: ops.argmin(X3, axis=1), lambda: np.argmin(X3, axis=1)),
    "argsort": (lambda: ops.argsort(X3, axis=0), lambda: np.argsort(X3, axis=0)),
    "nanargmin": (lambda: ops.nanargmin(NAN_X, axis=0), lambda: np.nanargmin(NAN_X, axis=0)),
    "count_nonzero": (lambda: ops.count_nonzero(I1, axis=0), lambda: np.count_nonzero(I1, 0)),
    "all": (lambda: ops.all(I1 > -9, axis=1), lambda: np.all(I1 > -9, axis=1)),
    "any": (lambda: ops.any(I1 > 6), lambda: np.any(I1 > 6)),
    "nonzero": (lambda: ops.nonzero(I1)[1], lambda: np.nonzero(I1)[1]),
    "where one argument": (lambda: ops.where(I1 > 0)[0], lambda: np.where(I1 > 0)[0]),
    "unique": (lambda: ops.unique(I1, return_inverse=True)[1].ravel(),
               lambda: np.unique(I1, return_inverse=True)[1].ravel()),
    "searchsorted": (lambda: ops.searchsorted(np.arange(5.0), A, side="right"),
                     lambda: np.searchsorted(np.arange(5.0), A, side="right")),
    "digitize": (lambda: ops.digitize(A, [-1.0, 0.0, 1.0]), lambda: np.digitize(A, [-1, 0, 1])),
    "unravel_index": (lambda: ops.unravel_index(np.array([5, 7]), (3, 4))[1],
                      lambda: np.unravel_index([5, 7], (3, 4))[1]),
    "nextafter": (lambda: ops.nextafter(A, 5.0), lambda: np.nextafter(A, 5.0)),
    "heaviside": (lambda: ops.heaviside(A, 0.5), lambda: np.heaviside(A, 0.5)),
    "angle": (lambda: ops.angle(A), lambda: np.angle(A)),
    "imag": (lambda: ops.imag(A), lambda: np.imag(A)),
    "argpartition": (lambda: np.sort(ops.argpartition(I2, 1)[:1]),
                     lambda: np.array([np.argmin(I2)])),
    "matrix_rank": (lambda: ops.matrix_rank(np.outer(ROW, ROW)), lambda: 1),
    "qr": (lambda: ops.qr(A.T)[1], lambda: np.linalg.qr(A.T)[1]),
    "eig": (lambda: np.sort(ops.eig(spd(3) + 0 * np.eye(3))[0].real), lambda: None),
    "lu_factor": (lambda: ops.lu_factor(spd(3))[1], lambda: None),
    "pinv": (lambda: ops.pinv(A), lambda: np.linalg.pinv(A)),
    "lstsq": (lambda: ops.lstsq(A.T, ROW), lambda: np.linalg.lstsq(A.T, ROW)[0]),
    "view": (lambda: ops.view(np.ones(2, np.float32), "int32"),
             lambda: np.ones(2, np.float32).view(np.int32)),
    "view_as_real": (lambda: ops.view_as_real(np.array([1 + 2j])), lambda: [[1.0, 2.0]]),
    "view_as_complex": (lambda: ops.view_as_complex(np.array([[1.0, 2.0]])),
                        lambda: [1 + 2j]),
    "polar": (lambda: ops.polar(np.array([2.0]), np.array([np.pi / 2])), lambda: [2j]),
}


@pytest.mark.parametrize("name", sorted(NOT_DIFFERENTIABLE))
def test_non_differentiable_op_forward(name):
    call, reference = NOT_DIFFERENTIABLE[name]
    expected = reference()
    got = call()
    if expected is not None:
        np.testing.assert_allclose(np.asarray(got, dtype=np.result_type(got, np.float64)),
                                   np.asarray(expected), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("make, dtype, shape", [
    (lambda: ops.zeros((2, 3)), "float32", (2, 3)), (lambda: ops.ones(2, "int8"), "int8", (2,)),
    (lambda: ops.empty((1, 2)), "float32", (1, 2)), (lambda: ops.eye(2, 3, 1), "float32", (2, 3)),
    (lambda: ops.identity(3, "float64"), "float64", (3, 3)),
    (lambda: ops.zeros_like(I1), "int64", (2, 3)),
    (lambda: ops.full_like(I1, 2.5, "float16"), "float16", (2, 3)),
    (lambda: ops.empty_like(A), "float64", (2, 3)), (lambda: ops.array([1, 2]), "int32", (2,)),
    (lambda: ops.geomspace(1, 8, 4), "float32", (4,)), (lambda: ops.bartlett(4), "float32", (4,)),
    (lambda: ops.blackman(4), "float32", (4,)), (lambda: ops.hamming(4), "float32", (4,)),
])
def test_creation_ops(make, dtype, shape):
    out = make()
    assert out.dtype == dtype and out.shape == shape


def test_aliases_and_queries():
    assert ops.abs is ops.absolute and ops.conj is ops.conjugate and ops.swish is ops.silu
    assert ops.true_divide is ops.divide and ops.hard_swish is ops.hard_silu
    assert ops.get_item(A, 1).tolist() == A[1].tolist()
    assert ops.shape(keras.Input((3, None))) == (None, 3, None)
    assert ops.size(A) == 6 and ops.ndim(X3) == 3 and ops.dtype(I1) == "int64"
    assert ops.is_tensor(A) and not ops.is_tensor([1.0])
    assert ops.allclose(A, A + 1e-9) and ops.allclose(np.nan, np.nan, equal_nan=True)
    assert ops.switch(5, [lambda x: x, lambda x: -x], 2.0) == -2.0
    assert ops.vectorize(lambda v: v + 1)(np.arange(3)).tolist() == [1, 2, 3]


def test_a_gradient_lost_at_argmax_is_refused_only_for_the_variables_asked_for():
    teacher = Variable(normal(3, 4), dtype="float64", name="teacher")
    student = Variable(normal(3, 4), dtype="float64", name="student")
    x = normal(5, 3)
    with GradientTape() as tape:
        targets = ops.one_hot(ops.argmax(ops.matmul(x, teacher), axis=-1), 4, dtype="float64")
        loss = ops.mean(ops.categorical_crossentropy(targets, ops.matmul(x, student),
                                                     from_logits=True))
    assert tape.gradient(loss, [student])[0].shape == (3, 4)
    with pytest.raises(TypeError, match="teacher.*only through argmax"):
        tape.gradient(loss, [student, teacher])
