"""kfp-tabular components, installed as ``kfp_tabular.components``."""
