"""Pytest plugin (load with ``-p tests.plugin``): a session-wide real kube-apiserver with KServe's CRDs.

Fixtures:
    moto_s3: moto's S3 server on 127.0.0.1 for a test module (``tests.support.s3``).
    kube_apiserver: A started :class:`tests.cluster.apiserver.KubeApiServer` with KServe's CRDs and the stock
        ``kserve-sklearnserver`` ClusterServingRuntime installed. Skipped when ``../shared/kserve`` is absent
        (a user's clone) or when the binaries are missing; with ``CI`` set, missing binaries fail instead.

Environment:
    KFP_TABULAR_SHARED_DIR: Overrides ``<repo>/../shared``; KServe's CRDs are read from its ``kserve`` folder.
    KUBE_APISERVER_BIN, ETCD_BIN, KFP_TABULAR_CACHE: See :func:`tests.cluster.apiserver.find_binaries`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.apiserver import BinariesMissingError, KubeApiServer, find_binaries
from tests.support.s3 import moto_s3  # noqa: F401 - registered here for every test: a real S3 API on loopback

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR_MISSING_REASON = "../shared/kserve not found (a user's clone): API-server tests need KServe's CRDs"


def in_ci() -> bool:
    """Whether the ``CI`` environment variable is set to a true value (missing binaries must fail there)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def shared_kserve_dir() -> Path:
    """Returns the KServe CRD directory: ``$KFP_TABULAR_SHARED_DIR/kserve`` or ``<repo>/../shared/kserve``."""
    override = os.environ.get("KFP_TABULAR_SHARED_DIR")
    shared = Path(override) if override else REPO_ROOT.parent / "shared"
    return shared / "kserve"


def require_binaries() -> None:
    """Skips the calling test when the apiserver/etcd binaries are missing, or fails when running in CI."""
    try:
        find_binaries()
    except BinariesMissingError as exc:
        if in_ci():
            pytest.fail(f"CI is set and the API-server binaries are missing: {exc}", pytrace=False)
        pytest.skip(str(exc))


def require_shared_kserve_dir() -> Path:
    """Returns :func:`shared_kserve_dir`, skipping the calling test when it is absent (failing it in CI)."""
    kserve_dir = shared_kserve_dir()
    if not kserve_dir.is_dir():
        if in_ci():
            pytest.fail(f"CI is set and {kserve_dir} is missing: {SHARED_DIR_MISSING_REASON}", pytrace=False)
        pytest.skip(SHARED_DIR_MISSING_REASON)
    return kserve_dir


@pytest.fixture(scope="session")
def kube_apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeApiServer]:
    """A real kube-apiserver v1.20.2 + etcd for the whole session, with KServe's CRDs installed.

    There is no controller-manager: namespaces never finish deleting, so tests should create unique
    namespaces (``kube_apiserver.create_namespace(prefix)``) instead of deleting them.
    """
    kserve_dir = require_shared_kserve_dir()
    require_binaries()
    with KubeApiServer(tmp_path_factory.mktemp("kube-apiserver")) as server:
        server.install_kserve_crds(kserve_dir)
        yield server


@pytest.fixture()
def local_runner(tmp_path: Path) -> Path:
    """Point kfp.local's SubprocessRunner (this interpreter, no venv) at a fresh pipeline root; return the root."""
    from kfp import local

    root = tmp_path / "pipeline_root"
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
    return root


@pytest.fixture(scope="module")
def single_threaded_openmp() -> Iterator[None]:
    """Run a test module's models on one OpenMP/BLAS thread, here and in the subprocesses it starts.

    OpenMP spin-waits made HistGradientBoosting ~15x slower on a busy 2-core machine.
    """
    from threadpoolctl import threadpool_limits

    previous = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"  # for subprocesses (kfp.local tasks, isolated loads)
    with threadpool_limits(limits=1):
        yield
    if previous is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = previous
