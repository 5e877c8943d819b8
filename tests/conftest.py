"""Shared fixtures: backends, dtypes, tolerances and the every-backend agreement helper.

``backend`` runs a test once per compiled backend ("cpp", "numba") that is available here;
the NumPy reference is the oracle those tests compare against. With ``ROSENBLATT_BACKEND``
set (CI runs the kernel tests once per backend that way, ``.ci/run``) only that backend is
tested - ``numpy`` included, whose dispatcher path then meets the reference - and its
absence (or an unknown name) is an error, not a skip. Tests that call the dispatcher
without ``backend=`` use the ``default_backend``, which honours the variable as the
dispatcher does.

``isa_params`` parametrizes the tests run once per instruction set of the compiled core:
every ISA compiled in is a test case, and one this CPU lacks is a visible skip rather than
a silently missing case.
"""

import _thread
import json
import os
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest
from rosenblatt import kernels as K
from sklearn.exceptions import ConvergenceWarning

COMPILED = ("cpp", "numba")


def forced_backend():
    """The backend named by ROSENBLATT_BACKEND (any value but empty and "auto"), or None."""
    env = os.environ.get("ROSENBLATT_BACKEND", "").strip()
    return env if env and env != "auto" else None


def backends_under_test():
    """Backends the cross-backend tests compare with the NumPy reference: the forced one
    (ROSENBLATT_BACKEND, whichever it names), else every available compiled backend."""
    forced = forced_backend()
    if forced is not None:
        return [forced]
    return [b for b in K.available_backends() if b in COMPILED]


def compiled_backends_under_test():
    """The compiled backends among :func:`backends_under_test` (none when numpy is forced),
    for tests about what only compiled kernels do (a shared summation order, say)."""
    return [b for b in backends_under_test() if b in COMPILED]


def _backend_params():
    names = backends_under_test()
    if not names:
        return [pytest.param(None, marks=pytest.mark.skip(reason="no compiled backend here"))]
    return [pytest.param(b, id=b) for b in names]


@pytest.fixture(params=_backend_params())
def backend(request):
    """A backend under test; resolving it fails loudly when it was forced but is absent
    (or unknown)."""
    return K.resolve_backend(request.param)


@pytest.fixture
def default_backend():
    """The backend the dispatcher picks without ``backend=`` (ROSENBLATT_BACKEND first)."""
    return K.resolve_backend(None)


@pytest.fixture(params=[np.float32, np.float64], ids=["f32", "f64"])
def dtype(request):
    return request.param


# --------------------------------------------------------------------------------------
# tolerances


def loss_targets(rng, loss, n, k, dtype=np.float64):
    """Targets a loss accepts: 0/1 for binary log loss, one-hot rows for log loss, counts
    for poisson, standard normal values otherwise."""
    if loss == "binary_log_loss":
        return (rng.random((n, k)) < 0.5).astype(dtype)
    if loss == "log_loss":
        return np.eye(k, dtype=dtype)[rng.integers(0, k, n)]
    if loss == "poisson":
        return rng.poisson(1.0, (n, k)).astype(dtype)
    return rng.standard_normal((n, k)).astype(dtype)


def rtol_for(dtype, n=1):
    """Cross-backend relative tolerance for results of reductions of length ``n``.

    float64 ~1e-10 and float32 ~1e-4 for short reductions, growing like sqrt(n / 16):
    backends sum in different orders (SIMD lanes, BLAS blocking).
    """
    base = 1e-10 if np.dtype(dtype) == np.float64 else 1e-4
    return base * max(1.0, n / 16.0) ** 0.5


def assert_close(actual, expected, dtype, n=1, *, scale=None, err_msg=""):
    """Compare with :func:`rtol_for`; the absolute tolerance is rtol times ``scale``.

    ``scale`` defaults to max(1, max |expected|), so elements that cancel to nearly zero
    in a reduction are judged against the size of the result, not their own.
    """
    expected = np.asarray(expected)
    actual = np.asarray(actual)
    assert actual.shape == expected.shape, f"{err_msg}: shape {actual.shape} != {expected.shape}"
    rtol = rtol_for(dtype, n)
    if scale is None:
        finite = np.abs(expected[np.isfinite(expected)])
        scale = max(1.0, float(finite.max()) if finite.size else 1.0)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale,
                               equal_nan=True, err_msg=err_msg)


def _compare(got, want, dtype, n, path):
    if isinstance(want, tuple | list):
        assert isinstance(got, tuple | list) and len(got) == len(want), path
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            _compare(g, w, dtype, n, f"{path}[{i}]")
    elif want is None:
        assert got is None, path
    elif isinstance(want, dict):
        assert set(got) == set(want), path
        for key in want:
            _compare(got[key], want[key], dtype, n, f"{path}[{key!r}]")
    elif isinstance(want, int | np.integer) and not isinstance(want, bool):
        assert int(got) == int(want), f"{path}: {got} != {want}"
    else:
        # the reference's type and dtype: an array of the same dtype, a NumPy scalar of
        # the same dtype, a float where the reference gives a Python float
        assert type(got) is type(want), f"{path}: {type(got).__name__} != {type(want).__name__}"
        if isinstance(want, np.ndarray | np.generic):
            assert got.dtype == want.dtype, f"{path}: dtype {got.dtype} != {want.dtype}"
        assert_close(got, want, dtype, n, err_msg=path)


def assert_backends_agree(call, dtype, n=1, backends=None):
    """Run ``call(backend_name)`` on the reference and on each backend under test
    (:func:`backends_under_test`, or ``backends``); compare.

    ``call`` must build fresh inputs on every invocation (kernels work in place) and
    return an array, a scalar, None, or a (nested) tuple/list/dict of those. Integers
    must match exactly, floats within :func:`assert_close` for reductions of length n;
    arrays and floats must have the reference's type and dtype (a float32 result where
    the reference gives float64 fails even when the values are close).
    Returns the reference result.
    """
    want = call("numpy")
    for name in backends_under_test() if backends is None else backends:
        _compare(call(name), want, dtype, n, name)
    return want


def _core_or_none():
    try:
        from rosenblatt import _core
    except ImportError:
        return None
    return _core


def isa_params():
    """One parameter per instruction set compiled into the core ([] without it); those
    this CPU lacks are marked skipped with the reason, so they show in the report."""
    core = _core_or_none()
    if core is None:
        return []
    here = core.available_isas()
    return [pytest.param(isa, id=isa, marks=pytest.mark.skipif(
        isa not in here, reason=f"ISA {isa!r} is compiled in but this CPU lacks it "
                                f"(available here: {', '.join(here)})"))
            for isa in core.compiled_isas()]


_TESTS = os.path.dirname(os.path.abspath(__file__))


def run_at_isa(isa, code, *, timeout=300, keep_backend=True):
    """Run ``code`` in a fresh interpreter with ``ROSENBLATT_ISA=isa`` (dispatch happens at
    import, so a forced ISA needs its own process), the test modules importable; the
    CompletedProcess. ``keep_backend=False`` drops a forced ``ROSENBLATT_BACKEND``."""
    env = dict(os.environ, ROSENBLATT_ISA=isa,
               PYTHONPATH=os.pathsep.join([_TESTS] + [p for p in sys.path if p]))
    if not keep_backend:
        env.pop("ROSENBLATT_BACKEND", None)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          check=False, text=True, timeout=timeout)


def result_at_isa(isa, module, function, **kw):
    """``module.function()`` run at ``isa`` (see :func:`run_at_isa`), after checking the
    core really dispatched to it; its JSON-able result."""
    code = (f"import json, {module} as t; from rosenblatt import _core; "
            f"assert _core.isa() == {isa!r}, _core.isa(); print(json.dumps(t.{function}()))")
    res = run_at_isa(isa, code, **kw)
    assert res.returncode == 0, res.stdout + res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def assert_isas_agree(digests):
    """``digests``: {isa: {kernel: digest}}; every kernel's digest equal across the ISAs."""
    first = next(iter(digests.values()))
    for kernel in first:
        seen = {isa: d[kernel] for isa, d in digests.items()}
        assert len(set(seen.values())) == 1, f"{kernel} differs between ISAs: {seen}"


def near_tie_rows(rng, n, d, dtype):
    """(X, w0): X (n, d) whose even rows are (almost) orthogonal to a random w0, so that
    p = w0.x falls inside the rounding bound of a reordered sum there (the perceptron
    kernels' near-ties)."""
    w0 = rng.standard_normal(d).astype(dtype)
    X = rng.standard_normal((n, d))
    X[::2] -= np.outer(X[::2] @ w0, w0) / (w0 @ w0)
    return X.astype(dtype), w0


def unaligned(a):
    """A C-contiguous copy of ``a`` at an odd address, as ``numpy.frombuffer`` at an offset or
    a memmap after an odd-sized header give (scikit-learn's checks pass it as it is)."""
    a = np.asarray(a)
    u = np.zeros(a.nbytes + 1, np.uint8)[1:].view(a.dtype).reshape(a.shape)
    u[...] = a
    assert u.flags.c_contiguous and not u.flags.aligned
    return u


def ctrl_c_latency(fit, after):
    """Run ``fit()`` with a Ctrl-C (KeyboardInterrupt in the main thread) after ``after``
    seconds, expecting the estimators' "interrupted" warning; return the seconds from the
    Ctrl-C to the end of the fit."""
    fired = []

    def fire():
        fired.append(time.perf_counter())
        _thread.interrupt_main()

    timer = threading.Timer(after, fire)
    timer.start()
    try:
        with pytest.warns(UserWarning, match="interrupted"):
            fit()
    finally:
        timer.cancel()
    assert fired, "the fit ended before Ctrl-C: make it longer"
    return time.perf_counter() - fired[0]


# ---- a fitted estimator's next partial_fit (_validation.py's shortcuts) ------------------

LATER_PARTIAL_FIT_CASES = ("same", "list_classes", "other_classes", "no_classes", "features",
                           "column_y", "nan_X", "nan_y", "float_y", "fortran_X")


def later_partial_fit_data(case):
    """(X, y, classes) of a first partial_fit and (X, y, classes) of a later one that differs
    from them as ``case`` says."""
    rng = np.random.RandomState(0)
    X, y = rng.randn(30, 4), np.arange(30) % 3
    classes = np.array([0, 1, 2])
    Xl, yl, cl = X.copy(), y.copy(), classes
    if case == "list_classes":
        cl = [0, 1, 2]
    elif case == "other_classes":
        cl = np.array([0, 1, 3])
    elif case == "no_classes":
        cl = None
    elif case == "features":
        Xl = X[:, :3].copy()
    elif case == "column_y":
        yl = y.reshape(-1, 1)
    elif case == "nan_X":
        Xl[5, 2] = np.nan
    elif case == "nan_y":
        yl = y.astype(float)
        yl[3] = np.nan
    elif case == "float_y":
        yl = y.astype(float)
    elif case == "fortran_X":
        Xl = np.asfortranarray(X)
    return (X, y, classes), (Xl, yl, cl)


def later_partial_fit_outcome(est, first, later):
    """((exception type, message), warning categories) of ``est.partial_fit(*later)`` after
    ``est.partial_fit(*first)`` (ConvergenceWarnings left out)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.partial_fit(first[0], first[1], classes=first[2])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            est.partial_fit(later[0], later[1], classes=later[2])
            err = (None, "")
        except (ValueError, TypeError) as exc:
            err = (type(exc), str(exc))
    cats = sorted({w.category.__name__ for w in caught} - {"ConvergenceWarning"})
    return err, cats
