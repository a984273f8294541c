from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coopml.contracts import (
    CustomCurve,
    CustomValuation,
    GeneralizationBoundCurve,
    LinearValuation,
    PowerLawCurve,
)


def _fd(f, x, h):
    return (f(x + h) - f(x - h)) / (2 * h)


@given(k=st.floats(0.5, 3.0), a_opt=st.floats(0.5, 2.0), M=st.floats(200.0, 1e6))
@settings(max_examples=40, deadline=None)
def test_generalization_bound_derivatives_match_finite_differences(k, a_opt, M):
    curve = GeneralizationBoundCurve(k=k, a_opt=a_opt)
    a, d1, d2 = curve.derivatives(M)
    if a <= 0:
        return
    h = 1e-4 * M
    assert d1 == pytest.approx(_fd(curve, M, h), rel=1e-6)
    assert d2 == pytest.approx(_fd(lambda x: curve.derivatives(x)[1], M, h), rel=1e-5)
    assert d1 > 0 > d2  # increasing and concave where positive


def test_generalization_bound_closed_form_values():
    curve = GeneralizationBoundCurve()
    M = 1000.0
    L = np.log(M)
    s = np.sqrt(2 * (2 + L))
    assert float(curve(M)) == pytest.approx(1 - (s + 4) / np.sqrt(M), rel=1e-14)
    _, d1, d2 = curve.derivatives(M)
    assert d1 == pytest.approx((L + 2 * s + 1) / (M**1.5 * s), rel=1e-14)
    assert d2 == pytest.approx((-(3 + 8 * L + 3 * L * L) - 6 * s * (2 + L)) / (s**3 * M**2.5))
    # clipped at 0 below the threshold and undefined region
    assert curve.derivatives([0.0, 0.1, 10.0])[0].tolist() == [0.0, 0.0, 0.0]


@given(
    a_max=st.floats(0.5, 1.0),
    scale=st.floats(1.0, 500.0),
    alpha=st.floats(0.1, 2.0),
    M=st.floats(1.0, 1e5),
)
@settings(max_examples=40, deadline=None)
def test_power_law_derivatives(a_max, scale, alpha, M):
    curve = PowerLawCurve(a_max=a_max, scale=scale, exponent=alpha)
    a, d1, d2 = curve.derivatives(M)
    h = 1e-5 * M
    assert d1 == pytest.approx(_fd(curve, M, h), rel=1e-5)
    assert d2 == pytest.approx(_fd(lambda x: curve.derivatives(x)[1], M, h), rel=1e-4)
    assert 0 <= a < a_max and d1 > 0 > d2


def test_custom_curve_finite_difference_hessian():
    curve = CustomCurve(lambda M: 1 - 1 / (1 + M / 100), lambda M: 100 / (100 + M) ** 2)
    _, _, d2 = curve.derivatives(np.array([50.0, 500.0]))
    np.testing.assert_allclose(d2, -200 / (100 + np.array([50.0, 500.0])) ** 3, rtol=1e-6)


def test_valuations():
    assert LinearValuation(100)(0.5) == 50.0
    v = CustomValuation(np.sqrt, lambda r: 0.5 / np.sqrt(r), lambda r: -0.25 * r**-1.5)
    assert [float(x) for x in v.derivatives(4.0)] == [2.0, 0.25, -0.03125]


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: GeneralizationBoundCurve(k=-1), "parameter 'k' must be finite and > 0; got -1.0"),
        (lambda: PowerLawCurve(1.0, 0.0, 1.0), "parameter 'scale' must be finite and > 0"),
        (lambda: LinearValuation(0), "parameter 'valuation_scale' must be finite and > 0"),
        (lambda: CustomCurve(1, lambda m: m), "parameter 'func' must be callable"),
    ],
)
def test_bad_curve_parameters(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()
