"""The inference examples run with tiny settings and give sensible answers."""

import importlib.util
import pathlib

import numpy as np
import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_integral_model_matches_quadrature():
    module = load("integral_hmc")
    predicted, ok = module.integral({"a": 0.7, "b": 1.3})
    reference = [module.reference_integral(0.7, 1.3, t) for t in module.TIMES]
    assert bool(ok)
    np.testing.assert_allclose(predicted, reference, rtol=1e-6, atol=1e-8)


@pytest.mark.slow
def test_integral_example_runs_hmc():
    module = load("integral_hmc")
    post = module.main(
        [
            "--num-warmup",
            "30",
            "--num-samples",
            "20",
            "--num-chains",
            "2",
            "--num-steps",
            "4",
        ]
    )
    assert post.kernel == "hmc" and post.draws["a"].shape == (2, 20)
    assert np.all(post.draws["a"] > 0)


@pytest.mark.slow
def test_event_time_example_with_censoring():
    module = load("event_time_nuts")
    y0, times, censored = module.make_data()
    assert censored.any() and not censored.all()
    post = module.main(
        ["--num-warmup", "60", "--num-samples", "60", "--num-chains", "2"]
    )
    assert abs(post.mean()["k"] - 0.8) < 0.15
