"""The model file must load where only scikit-learn, pandas, numpy (and KServe) are installed.

Three checks: the pickle's opcodes name no module outside that set; the model loads and predicts in a fresh
interpreter where ``kfp_tabular`` cannot be imported; and it predicts the same probabilities in the serve
environment (scikit-learn 1.5.2 with pandas 2 and numpy 2) as in the pipeline environment.
"""

import functools
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from kfp_tabular.components.training.train import core, rows
from kfp_tabular.components.training.train.request import TrainRequest
from tests.support.pickle_audit import pickled_globals, pickled_modules

LABEL = "churned"
REPO = Path(__file__).resolve().parents[4]
#: The serve environment's interpreter; KFP_TABULAR_SERVE_PYTHON points elsewhere (e.g. inside the serve image).
SERVE_PYTHON = Path(os.environ.get("KFP_TABULAR_SERVE_PYTHON") or REPO / ".venv-serve" / "bin" / "python")
FAST = {
    "logistic_regression": {},
    "hist_gradient_boosting": {"max_iter": 40},
    "random_forest": {"n_estimators": 25, "max_depth": 8},
}
#: What KServe's sklearn runtime has besides the standard library. ``_loss`` is scikit-learn's own Cython
#: loss module, which registers itself under that top-level name when sklearn._loss is imported.
ALLOWED = {"sklearn", "numpy", "pandas", "scipy", "joblib", "_loss"} | set(sys.stdlib_module_names)

# Loads a model in a fresh interpreter and prints its probabilities for JSON rows and for a DataFrame rebuilt
# from JSON with the original dtypes (the serve environment has no Parquet engine). kfp_tabular is blocked.
LOAD_AND_PREDICT = r"""
import json, sys, warnings
sys.modules["kfp_tabular"] = None
# sklearn's feature-name and version-skew warnings (UserWarning) and pandas deprecations would flood a server's log.
warnings.simplefilter("error", UserWarning)
warnings.simplefilter("error", FutureWarning)
import joblib, pandas as pd
with open(sys.argv[1]) as handle:
    spec = json.load(handle)
frame = pd.DataFrame(spec["frame_rows"], columns=spec["columns"]).astype(spec["dtypes"])
out = {}
for name, path in spec["models"].items():
    model = joblib.load(path)
    out[name] = {
        "rows": model.predict_proba(spec["rows"]).tolist(),
        "frame": model.predict_proba(frame).tolist(),
        "shuffled": model.predict_proba(frame[spec["columns"][::-1]]).tolist(),
    }
out["versions"] = {"sklearn": __import__("sklearn").__version__, "pandas": pd.__version__,
                   "numpy": __import__("numpy").__version__}
out["kfp_tabular_loaded"] = sorted(m for m in sys.modules if m.startswith("kfp_tabular") and sys.modules[m])
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def models(churn, tmp_path_factory):
    root = tmp_path_factory.mktemp("portable")
    return {
        name: core.train(TrainRequest(LABEL, name, params), churn.train, churn.schema, root / name)
        for name, params in FAST.items()
    }


def _json_rows(frame):
    return json.loads(
        json.dumps(
            [
                [None if pd.isna(v) else (v.item() if hasattr(v, "item") else v) for v in row]
                for row in frame.itertuples(index=False)
            ]
        )
    )


@pytest.fixture(scope="module")
def request_spec(churn, models, tmp_path_factory):
    """The models and a batch of eval rows, as JSON a separate interpreter can read."""
    order = next(iter(models.values())).metadata["feature_order"]
    frame = churn.eval_frame[order].head(200)
    spec = {
        "models": {name: str(Path(result.model_dir) / "model.joblib") for name, result in models.items()},
        "rows": _json_rows(frame),
        "frame_rows": _json_rows(frame),
        "columns": order,
        "dtypes": {c: str(t) for c, t in frame.dtypes.items()},
    }
    path = tmp_path_factory.mktemp("spec") / "spec.json"
    path.write_text(json.dumps(spec))
    expected = {name: joblib.load(spec["models"][name]).predict_proba(frame) for name in models}
    return path, expected


def _run_isolated(python, spec_path, cwd):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    done = subprocess.run(
        [str(python), "-I", "-c", LOAD_AND_PREDICT, str(spec_path)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("estimator", sorted(FAST))
def test_pickle_references_only_sklearn_pandas_numpy_and_the_stdlib(models, estimator):
    modules = pickled_modules(Path(models[estimator].model_dir) / "model.joblib")
    assert {"sklearn", "numpy", "pandas", "functools"} <= modules
    assert "kfp_tabular" not in modules
    assert modules <= ALLOWED, modules - ALLOWED


def test_the_audit_reads_globals_from_opcodes_and_object_arrays(models, tmp_path):
    found = pickled_globals(Path(models["logistic_regression"].model_dir) / "model.joblib")
    assert ("pandas.core.frame", "DataFrame") in found
    assert ("functools", "partial") in found
    assert ("sklearn.linear_model._logistic", "LogisticRegression") in found
    assert ("joblib.numpy_pickle", "NumpyArrayWrapper") in found
    # A class that only appears inside an object array (a nested pickle joblib embeds) is found too.
    holder = {"arr": np.array([pd.Timestamp("2024-01-01"), 1], dtype=object), "big": np.arange(1000.0)}
    joblib.dump(holder, tmp_path / "objects.joblib")
    assert ("pandas._libs.tslibs.timestamps", "_unpickle_timestamp") in pickled_globals(tmp_path / "objects.joblib")
    # Plain pickles (protocol 2: GLOBAL opcodes; protocol 5: STACK_GLOBAL) are read the same way.
    for protocol in (2, 5):
        (tmp_path / f"plain{protocol}.pkl").write_bytes(
            pickle.dumps(functools.partial(pd.DataFrame, columns=["a"]), protocol)
        )
        assert pickled_globals(tmp_path / f"plain{protocol}.pkl") >= {
            ("functools", "partial"),
            ("pandas.core.frame", "DataFrame"),
        }


def test_the_audit_catches_a_model_that_needs_this_package(tmp_path):
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    impure = Pipeline(
        [
            ("read", FunctionTransformer(rows.read_columns)),
            ("frame", FunctionTransformer(functools.partial(pd.DataFrame))),
        ]
    )
    joblib.dump(impure, tmp_path / "impure.joblib")
    modules = pickled_modules(tmp_path / "impure.joblib")
    assert "kfp_tabular" in modules
    assert pickled_globals(tmp_path / "impure.joblib") >= {
        ("kfp_tabular.components.training.train.rows", "read_columns")
    }


def test_model_loads_and_predicts_where_kfp_tabular_cannot_be_imported(request_spec, tmp_path):
    spec_path, expected = request_spec
    out = _run_isolated(sys.executable, spec_path, tmp_path)
    assert out["kfp_tabular_loaded"] == []
    for name, probabilities in expected.items():
        for shape in ("rows", "frame", "shuffled"):
            np.testing.assert_array_equal(np.array(out[name][shape]), probabilities, err_msg=f"{name} {shape}")


def test_blocking_kfp_tabular_really_blocks_it(tmp_path):
    done = subprocess.run(
        [sys.executable, "-I", "-c", "import sys; sys.modules['kfp_tabular'] = None; import kfp_tabular.components"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode != 0 and "ModuleNotFoundError" in done.stderr


@pytest.fixture(scope="session")
def serve_python():
    """The serve interpreter; skips (fails with CI set) when the serve environment does not exist."""
    if not SERVE_PYTHON.exists():
        if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
            pytest.fail(f"CI is set but the serve environment {SERVE_PYTHON} does not exist (make the serve venv)")
        pytest.skip(f"serve environment {SERVE_PYTHON} not found: create it to check cross-environment loading")
    return SERVE_PYTHON


@pytest.mark.serve
def test_serve_environment_predicts_the_same_probabilities(serve_python, request_spec, tmp_path):
    spec_path, expected = request_spec
    out = _run_isolated(serve_python, spec_path, tmp_path)
    import sklearn

    assert out["versions"]["sklearn"] == sklearn.__version__
    assert out["versions"]["pandas"] != pd.__version__ or out["versions"]["numpy"] != np.__version__
    assert out["kfp_tabular_loaded"] == []
    for name, probabilities in expected.items():
        for shape in ("rows", "frame", "shuffled"):
            np.testing.assert_allclose(
                np.array(out[name][shape]), probabilities, rtol=0, atol=1e-9, err_msg=f"{name} {shape} in the serve env"
            )
