"""``python -m kfp_tabular.components.data_processing.synthetic_data``."""

import sys

from kfp_tabular.components.data_processing.synthetic_data.core import main

sys.exit(main())
