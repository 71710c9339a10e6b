"""Container images the components run in, one per dependency set.

Both are built from the Containerfiles in ``components/common/containers/`` (``make images``), pinned to the
same locks as the local environments, and tagged with the package version so a compiled pipeline names exactly the code
it was compiled from. Override the registry at compile time with ``KFP_TABULAR_REGISTRY``.

A tag can be rebuilt, and KFP's cache key holds the image *name* (kubeflow/pipelines #13862): ``make images``
records each image's digest, and ``kfp-tabular compile --pin-digests`` names the images as
``name:tag@sha256:...`` (:func:`pin_images`), which a cluster pulls by digest and KFP caches apart.
"""

import json
import os
import re
from pathlib import Path

VERSION = "0.1.0"
REGISTRY = os.environ.get("KFP_TABULAR_REGISTRY", "ghcr.io/kfp-tabular")

#: TFDV, TensorFlow, scikit-learn, kfp: every pipeline component runs here.
PIPELINE_IMAGE = f"{REGISTRY}/kfp-tabular-pipeline:{VERSION}"
#: KServe model server with scikit-learn 1.5: the predictor image for models trained here.
SERVE_IMAGE = f"{REGISTRY}/kfp-tabular-serve:{VERSION}"

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def digests_path() -> Path:
    """Return where ``make images`` (containers/build.sh) records each built image's digest."""
    cache = os.environ.get("KFP_TABULAR_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "kfp-tabular")
    return Path(cache) / "images" / "digests.json"


def built_digests(path: str | os.PathLike | None = None) -> dict[str, str]:
    """Return ``{image: digest}`` for PIPELINE_IMAGE and SERVE_IMAGE from the digests file build.sh writes.

    Raises:
        ConfigError: The file is missing or unreadable, or an image has no valid recorded digest.
    """
    from kfp_tabular.components.common.errors import ConfigError

    path = Path(path) if path else digests_path()
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: no image digests ({exc}); build the images first with `make images`") from None
    found = {}
    for image in (PIPELINE_IMAGE, SERVE_IMAGE):
        digest = (table.get(image) or {}).get("digest", "")
        if not _DIGEST.match(digest):
            raise ConfigError(f"{path}: no digest recorded for {image}; build it with `make images`")
        found[image] = digest
    return found


def pin_images(text: str, digests: dict[str, str]) -> str:
    """Name each image of ``digests`` in a compiled pipeline's YAML as ``image@digest``.

    Only whole ``image: <name>`` values (the component containers) are rewritten; the readable tag stays in
    front of the digest (``name:tag@sha256:...``: the digest is what is pulled).

    Raises:
        ConfigError: A digest is malformed, or no image of ``digests`` occurs in ``text``.
    """
    from kfp_tabular.components.common.errors import ConfigError

    count = 0
    for image, digest in digests.items():
        if not _DIGEST.match(digest):
            raise ConfigError(f"{image}: {digest!r} is not a sha256 digest")
        pattern = re.compile(rf"(?m)^(\s*image:\s+)(['\"]?){re.escape(image)}\2[ \t]*$")
        text, n = pattern.subn(lambda m: f"{m.group(1)}{m.group(2)}{image}@{digest}{m.group(2)}", text)
        count += n
    if not count:
        raise ConfigError(f"none of {', '.join(digests)} occurs in the compiled pipeline")
    return text
