"""Container images the components run in, one per dependency set.

Both are built from the Containerfiles in ``components/common/containers/`` (``make images``), pinned to the
same locks as the local environments, and tagged with the package version so a compiled pipeline names exactly the code
it was compiled from. Override the registry at compile time with ``KFP_TABULAR_REGISTRY``.
"""

import os

VERSION = "0.1.0"
REGISTRY = os.environ.get("KFP_TABULAR_REGISTRY", "ghcr.io/kfp-tabular")

#: TFDV, TensorFlow, scikit-learn, kfp: every pipeline component runs here.
PIPELINE_IMAGE = f"{REGISTRY}/kfp-tabular-pipeline:{VERSION}"
#: KServe model server with scikit-learn 1.5: the predictor image for models trained here.
SERVE_IMAGE = f"{REGISTRY}/kfp-tabular-serve:{VERSION}"
