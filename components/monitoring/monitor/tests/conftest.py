"""Fixtures: the deployed model (``traffic.deploy``), built once per session."""

import pytest

from kfp_tabular.components.monitoring.monitor.tests import traffic


@pytest.fixture(scope="module", autouse=True)
def single_threaded(single_threaded_openmp):
    """One OpenMP/BLAS thread (tests.plugin.single_threaded_openmp)."""
    yield


@pytest.fixture(scope="session")
def deployed(tmp_path_factory) -> traffic.Deployed:
    """A churn model validated, trained, evaluated and recorded in a lineage record (``traffic.deploy``)."""
    return traffic.deploy(tmp_path_factory.mktemp("deployed"))


@pytest.fixture(scope="session")
def deployed_regressor(tmp_path_factory) -> traffic.Deployed:
    """A Ridge regressor of monthly_charges on the churn data, recorded the same way."""
    return traffic.deploy(tmp_path_factory.mktemp("deployed-regressor"), label="monthly_charges")


@pytest.fixture(scope="session")
def deployed_multiclass(tmp_path_factory) -> traffic.Deployed:
    """A 3-class logistic regression of contract_type on the churn data, recorded the same way."""
    return traffic.deploy(tmp_path_factory.mktemp("deployed-multiclass"), label="contract_type")
