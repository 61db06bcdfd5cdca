"""The `course` support package: gradient checking, visible-test helpers, validation, plots."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from course import plots, testing, validate  # noqa: E402
from course.gradcheck import gradient_error, rel_error  # noqa: E402


def test_rel_error_hand_worked():
    # |1 - 1.1| / (|1| + |1.1|) = 0.1 / 2.1
    assert rel_error(1.0, 1.1) == pytest.approx(0.1 / 2.1)
    assert rel_error(np.array([0.0, 2.0]), np.array([0.0, 2.0])) == 0.0
    # the floor 1e-8 in the denominator keeps exact zeros finite
    assert rel_error(0.0, 1e-12) == pytest.approx(1e-12 / 1e-8)


def test_rel_error_refuses_broadcasting():
    with pytest.raises(ValueError, match="shape"):
        rel_error(np.ones(3), np.ones((3, 1)))


def test_gradient_error_is_rounding_small_for_the_calculus_gradient_and_leaves_x_alone():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 4))
    dout = rng.normal(size=(3, 4))
    x0 = x.copy()
    # d/dx sum(sin(x) * dout) = cos(x) * dout
    assert gradient_error(np.cos(x0) * dout, np.sin, x, dout) < 1e-8
    np.testing.assert_array_equal(x, x0)


def test_gradient_error_through_a_reduction_and_of_a_wrong_gradient():
    # f(x) = x @ w, dout upstream: gradient is dout @ w.T
    rng = np.random.default_rng(1)
    x, w, dout = rng.normal(size=(2, 3)), rng.normal(size=(3, 5)), rng.normal(size=(2, 5))
    assert gradient_error(dout @ w.T, lambda a: a @ w, x, dout) < 1e-8
    # a gradient off by 10 % in one entry: |1.1 g - g| / (2.1 |g|) = 0.1 / 2.1
    wrong = dout @ w.T
    wrong[0, 0] *= 1.1
    assert gradient_error(wrong, lambda a: a @ w, x, dout) == pytest.approx(0.1 / 2.1, rel=1e-6)


def test_gradient_error_of_one_sided_difference_is_order_h():
    # exp at 0: one-sided (e^h - 1)/h = 1 + h/2 + ...; relative error (h/2) / 2 = h / 4
    x, dout = np.zeros(1), np.ones(1)
    for h in (1e-2, 1e-3):
        err = gradient_error(np.ones(1), np.exp, x, dout, h=h, centered=False)
        assert err == pytest.approx(h / 4, rel=0.02)
        # centered: (e^h - e^-h)/(2h) = 1 + h^2/6; relative error h^2 / 12
        assert gradient_error(np.ones(1), np.exp, x, dout, h=h) == pytest.approx(h**2 / 12, rel=0.02)


@pytest.mark.parametrize(("analytic", "h", "dout"), [(np.ones(2), 1e-5, np.ones(3)),
                                                     (np.ones(3), 0.0, np.ones(3)),
                                                     (np.ones(3), 1e-5, np.ones(2))])
def test_gradient_error_bad_input(analytic, h, dout):
    with pytest.raises(ValueError):
        gradient_error(analytic, lambda a: a, np.ones(3), dout, h=h)


def test_gradcheck_hands_out_no_numerical_gradient():
    """Issue 10 §3: course/ is published on day one, so nothing in it returns a gradient that
    could answer notebook 03's numerical_gradient(f, x, dout)."""
    import course.gradcheck as gc

    public = {n for n in dir(gc) if not n.startswith("_") and callable(getattr(gc, n))}
    assert "numerical_gradient_array" not in public
    x, dout = np.array([1.0, 2.0]), np.array([1.0, 1.0])
    for name in public - {"Callable", "annotations"}:
        fn = getattr(gc, name)
        for args in ((np.sin, x, dout), (np.cos(x), np.sin, x, dout)):
            try:
                out = fn(*args)
            except Exception:  # noqa: BLE001 - a refusal is fine
                continue
            assert np.ndim(out) == 0, f"course.gradcheck.{name} returned an array"
    out = testing.check_gradient_against_reference("dx", np.cos(x) * dout, np.sin, x, dout)
    assert np.ndim(out) == 0


def test_check_gradient_against_reference_blames_the_right_function(capsys):
    x, dout = np.array([0.3, -1.2, 2.0]), np.array([1.0, -2.0, 0.5])
    right = np.cos(x) * dout

    def centered(f, x, dout, h=1e-5):
        g = np.zeros_like(x)
        for i in range(x.size):
            e = np.zeros_like(x)
            e[i] = h
            g[i] = np.sum((f(x + e) - f(x - e)) * dout) / (2 * h)
        return g

    def one_sided(f, x, dout, h=1e-5):
        g = np.zeros_like(x)
        for i in range(x.size):
            e = np.zeros_like(x)
            e[i] = h
            g[i] = np.sum((f(x + e) - f(x)) * dout) / h
        return g

    def unwritten(f, x, dout, h=1e-5):
        raise NotImplementedError()

    assert testing.check_gradient_against_reference("dx", right, np.sin, x, dout, yours=centered) < 1e-8
    assert "agrees" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="[Ff]ix section 1 first"):
        testing.check_gradient_against_reference("dx", right, np.sin, x, dout, yours=one_sided)
    with pytest.raises(AssertionError, match="the analytic gradient is wrong"):
        testing.check_gradient_against_reference("dx", 1.1 * right, np.sin, x, dout, yours=centered)
    testing.check_gradient_against_reference("dx", right, np.sin, x, dout, yours=unwritten)
    assert "not written yet" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="shape"):
        testing.check_gradient_against_reference("dx", right[:2], np.sin, x, dout)


def test_check_keys_equal_dtype_true(capsys):
    testing.check_keys("cache", {"x": 1, "mean": 2}, ["x", "mean"])
    with pytest.raises(AssertionError, match=r"missing the keys \['xmu'\]"):
        testing.check_keys("cache", {"x": 1}, ["x", "xmu"])
    with pytest.raises(AssertionError, match="expected a dict"):
        testing.check_keys("cache", (1, 2), ["x"])
    testing.check_equal("mode", "train", "train")
    with pytest.raises(AssertionError, match="expected: 'train'"):
        testing.check_equal("mode", "test", "train")
    testing.check_dtype("out", np.ones(2, dtype=np.float32), np.float32)
    with pytest.raises(AssertionError, match="dtype float64, expected float32"):
        testing.check_dtype("out", np.ones(2), np.float32)
    testing.check_true("loss decreased", True, "1.0 -> 0.5")
    with pytest.raises(AssertionError, match="loss decreased does not hold"):
        testing.check_true("loss decreased", False)
    assert capsys.readouterr().out.count("ok  ") == 4


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
