import numpy as np
import pytest

import simdnorm


def pytest_configure(config):
    # hypothesis' reporting hook trips a third-party DeprecationWarning; with the project's
    # filterwarnings = ["error"] that would turn every hypothesis failure into an INTERNALERROR.
    config.addinivalue_line("filterwarnings", "ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning")


@pytest.fixture(params=simdnorm.available_isas())
def isa(request):
    """Runs the test once per ISA this CPU supports, with that variant forced."""
    with simdnorm.use_isa(request.param):
        yield request.param


@pytest.fixture
def rng(request):
    """A generator seeded by the test's name, so every test is reproducible on its own."""
    seed = sum(ord(c) * (i + 1) for i, c in enumerate(request.node.name)) % (2**32)
    return np.random.default_rng(seed)


@pytest.fixture(params=[False, True], ids=["row-groups", "interleaved"])
def wide_rows_tuning(request):
    """Runs the test once with each path for LayerNorm / RMSNorm rows of 4-16 KiB (simdnorm::Tuning:
    the default depends on the CPU's make), then restores the setting it found."""
    before = simdnorm._core._tuning()["interleave_wide_rows"]
    simdnorm._core._set_tuning(interleave_wide_rows=request.param)
    try:
        yield request.param
    finally:
        simdnorm._core._set_tuning(interleave_wide_rows=before)
