"""kfp-tabular pipelines, installed as ``kfp_tabular.pipelines``."""
