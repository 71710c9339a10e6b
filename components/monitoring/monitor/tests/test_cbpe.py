"""CBPE against the true metrics, with labels, on real data shifted so that accuracy changes.

Measured (seeded; the figures docs/monitoring.md quotes):

- the deployed churn model (train's logistic regression on 3,000 rows of the bundled churn data) on 20,000 new
  rows: accuracy 0.762 (CBPE 0.773), ROC AUC 0.835 (CBPE 0.841); served new customers only (tenure < 6 months,
  3,296 rows, a covariate shift): accuracy falls to 0.700 (CBPE 0.712, standard error 0.008), ROC AUC to 0.746
  (CBPE 0.772); the drifted churn variant (5,000 rows): accuracy 0.756 (CBPE 0.773), ROC AUC 0.830 (CBPE 0.846).
- scikit-learn's breast cancer data (real measurements), logistic regression, served the rows nearest the decision
  boundary: true accuracy 0.97 -> 0.78; CBPE 0.82 (within its standard error of 0.056 on 40 rows).
- the same data with an over-regularised (under-confident, uncalibrated) model: CBPE is off by 0.05 to 0.1 --
  the method's assumption, stated in the report when the evaluation's own scores show it.
"""

from __future__ import annotations

import pytest

from kfp_tabular.components.monitoring.monitor import cbpe
from kfp_tabular.components.monitoring.monitor.tests.traffic import LABEL, churn


def _true(p, y):
    import numpy as np
    from sklearn.metrics import roc_auc_score

    return float(((np.asarray(p) > 0.5) == np.asarray(y)).mean()), float(roc_auc_score(y, p))


def test_cbpe_follows_the_deployed_churn_models_accuracy_when_new_customers_are_served(deployed):
    frame = churn(20_000, seed=91)
    p = deployed.pipeline.predict_proba(frame.drop(columns=[LABEL]))[:, 1]
    y = frame[LABEL].to_numpy()
    assert list(deployed.pipeline.classes_) == [0, 1]
    accuracy, auc = _true(p, y)
    shifted = frame["tenure_months"].to_numpy() < 6
    accuracy_shifted, auc_shifted = _true(p[shifted], y[shifted])
    assert accuracy - accuracy_shifted > 0.03 and auc - auc_shifted > 0.05  # the shift changes the true metrics
    for probabilities, true_accuracy, true_auc in ((p, accuracy, auc), (p[shifted], accuracy_shifted, auc_shifted)):
        estimate = cbpe.estimate_binary(probabilities)
        assert abs(estimate.accuracy - true_accuracy) < max(0.02, 3 * estimate.accuracy_stderr)
        assert abs(estimate.roc_auc - true_auc) < 0.03
    # The churn generator's drifted variant (charges +25, other contracts, shorter tenure): 0.756 true, 0.773 CBPE.
    drifted = churn(5000, seed=92, variant="drifted")
    p_drifted = deployed.pipeline.predict_proba(drifted.drop(columns=[LABEL]))[:, 1]
    true_accuracy, true_auc = _true(p_drifted, drifted[LABEL].to_numpy())
    estimate = cbpe.estimate_binary(p_drifted)
    assert abs(estimate.accuracy - true_accuracy) < 0.03 and abs(estimate.roc_auc - true_auc) < 0.03
    # And CBPE sees the drop: the shifted window's estimate is lower by about as much as the truth.
    drop = cbpe.estimate_binary(p).accuracy - cbpe.estimate_binary(p[shifted]).accuracy
    assert drop == pytest.approx(accuracy - accuracy_shifted, abs=0.02)


def _breast_cancer(c: float):
    import numpy as np
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_breast_cancer(as_frame=True)
    x, y = data.data, data.target.to_numpy()
    order = np.random.default_rng(0).permutation(len(y))
    train, test = order[:300], order[300:]
    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000)).fit(x.iloc[train], y[train])
    return model.predict_proba(x.iloc[test])[:, 1], y[test]


def test_cbpe_on_real_measurements_near_the_decision_boundary():
    import numpy as np

    p, y = _breast_cancer(1.0)
    accuracy, _ = _true(p, y)
    near = np.abs(p - 0.5) < 0.45
    shifted_accuracy, shifted_auc = _true(p[near], y[near])
    assert accuracy - shifted_accuracy > 0.1
    estimate = cbpe.estimate_binary(p[near])
    assert abs(estimate.accuracy - shifted_accuracy) < 2 * estimate.accuracy_stderr
    assert abs(estimate.roc_auc - shifted_auc) < 0.05
    assert abs(cbpe.estimate_binary(p).accuracy - accuracy) < 0.01


def test_cbpe_is_off_for_uncalibrated_scores_as_its_assumption_says():
    p, y = _breast_cancer(0.05)  # heavily regularised: scores pulled towards 0.5, accuracy still 0.97
    accuracy, auc = _true(p, y)
    estimate = cbpe.estimate_binary(p)
    assert accuracy - estimate.accuracy > 0.03 and auc - estimate.roc_auc > 0.02


def test_expected_roc_auc_is_the_area_of_the_expected_curve():
    import numpy as np
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(5)
    p = rng.beta(2, 2, 4000)
    # Labels drawn from the scores themselves: the scores are calibrated by construction.
    draws = [roc_auc_score(rng.random(len(p)) < p, p) for _ in range(30)]
    assert cbpe.expected_roc_auc(p) == pytest.approx(float(np.mean(draws)), abs=0.005)
    assert cbpe.expected_roc_auc(np.ones(10)) is None
    tied = cbpe.expected_roc_auc(np.full(100, 0.3))
    assert tied == pytest.approx(0.5)
