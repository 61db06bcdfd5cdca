"""The `course` support package: gradient checking, visible-test helpers, validation, plots."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from course import plots, testing, validate  # noqa: E402
from course.gradcheck import numerical_gradient_array, rel_error  # noqa: E402


def test_rel_error_hand_worked():
    # |1 - 1.1| / (|1| + |1.1|) = 0.1 / 2.1
    assert rel_error(1.0, 1.1) == pytest.approx(0.1 / 2.1)
    assert rel_error(np.array([0.0, 2.0]), np.array([0.0, 2.0])) == 0.0
    # the floor 1e-8 in the denominator keeps exact zeros finite
    assert rel_error(0.0, 1e-12) == pytest.approx(1e-12 / 1e-8)


def test_rel_error_refuses_broadcasting():
    with pytest.raises(ValueError, match="shape"):
        rel_error(np.ones(3), np.ones((3, 1)))


def test_numerical_gradient_matches_calculus_and_restores_x():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 4))
    dout = rng.normal(size=(3, 4))
    x0 = x.copy()
    # d/dx sum(sin(x) * dout) = cos(x) * dout
    grad = numerical_gradient_array(np.sin, x, dout)
    assert rel_error(grad, np.cos(x0) * dout) < 1e-8
    np.testing.assert_array_equal(x, x0)


def test_numerical_gradient_through_a_reduction():
    # f(x) = x @ w, dout upstream: gradient is dout @ w.T
    rng = np.random.default_rng(1)
    x, w, dout = rng.normal(size=(2, 3)), rng.normal(size=(3, 5)), rng.normal(size=(2, 5))
    grad = numerical_gradient_array(lambda a: a @ w, x, dout)
    assert rel_error(grad, dout @ w.T) < 1e-8


@pytest.mark.parametrize(("x", "h", "err"), [(np.ones(3, dtype=int), 1e-5, TypeError),
                                           ([1.0, 2.0], 1e-5, TypeError),
                                           (np.ones(3), 0.0, ValueError)])
def test_numerical_gradient_bad_input(x, h, err):
    with pytest.raises(err):
        numerical_gradient_array(lambda a: a, x, np.ones(3), h=h)


def test_check_close_prints_and_raises(capsys):
    testing.check_close("mean", [1.0, 2.0], [1.0, 2.0])
    assert "ok  mean" in capsys.readouterr().out
    with pytest.raises(AssertionError, match=r"yours:.*\n.*expected"):
        testing.check_close("mean", [1.0, 2.5], [1.0, 2.0])
    with pytest.raises(AssertionError, match="shape"):
        testing.check_close("mean", [1.0], [1.0, 2.0])


def test_check_raises_and_unchanged():
    def bad(x):
        raise ValueError("x must be 2-D")

    testing.check_raises(ValueError, bad, 1)
    with pytest.raises(AssertionError, match="nothing was raised"):
        testing.check_raises(ValueError, lambda x: x, 1)
    with pytest.raises(AssertionError, match="expected ValueError, got TypeError"):
        testing.check_raises(ValueError, lambda x: x + "a", 1)
    with pytest.raises(NotImplementedError):
        testing.check_raises(ValueError, lambda: (_ for _ in ()).throw(NotImplementedError()))
    testing.check_unchanged("x", np.ones(2), np.ones(2))
    with pytest.raises(AssertionError, match="modified in place"):
        testing.check_unchanged("x", np.ones(2), np.zeros(2))


def test_check_gradient_threshold():
    assert testing.check_gradient("dx", np.ones(3), np.ones(3)) == 0.0
    with pytest.raises(AssertionError, match="relative error"):
        testing.check_gradient("dx", np.ones(3), 1.01 * np.ones(3))
    with pytest.raises(AssertionError, match="shape"):
        testing.check_gradient("dx", np.ones(3), np.ones(4))


def test_check_shape():
    testing.check_shape("gamma", np.ones(3), (3,))
    with pytest.raises(AssertionError, match=r"\(1, 3\), expected \(3,\)"):
        testing.check_shape("gamma", np.ones((1, 3)), (3,))


def test_validate_messages_name_the_argument():
    with pytest.raises(TypeError, match="x must hold real numbers"):
        validate.as_float_array("x", np.array(["a"]))
    with pytest.raises(TypeError, match="x must hold real numbers"):
        validate.as_float_array("x", np.array([True]))
    with pytest.raises(ValueError, match=r"x must be 2-D, got shape \(3,\)"):
        validate.as_float_array("x", np.ones(3), ndim=2)
    assert validate.as_float_array("x", [1, 2]).dtype == np.float64
    x32 = np.ones(2, dtype=np.float32)
    assert validate.as_float_array("x", x32) is x32, "float input must not be copied"
    with pytest.raises(ValueError, match=r"gamma must have shape \(3,\), got \(2,\)"):
        validate.check_vector("gamma", np.ones(2), 3)
    with pytest.raises(ValueError, match="momentum must lie in"):
        validate.check_real("momentum", 1.5, 0.0, 1.0)
    with pytest.raises(TypeError, match="eps must be a real number"):
        validate.check_real("eps", "1e-5")
    with pytest.raises(TypeError):
        validate.check_real("eps", True)
    with pytest.raises(ValueError):
        validate.check_real("eps", float("nan"))


def test_plots_style_and_labels():
    plots.set_style()
    assert matplotlib.rcParams["axes.prop_cycle"].by_key()["color"][0] == plots.COLORS[0]
    fig, ax = plt.subplots()
    ax.plot([0, 1], label="a")
    ax.plot([1, 0], label="b")
    plots.finish(ax, "t", "step [iterations]", "loss [nats]")
    assert ax.get_legend() is not None and ax.get_xlabel() == "step [iterations]"
    with pytest.raises(ValueError, match="ylabel"):
        plots.finish(ax, "t", "x", " ")
    with pytest.raises(ValueError, match="2 columns but 1 labels"):
        plots.histograms([np.ones(3), np.ones(3)], ["a"], "t", "x")
    plt.close(fig)
