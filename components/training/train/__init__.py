"""Train a scikit-learn Pipeline from a Parquet dataset and a TFDV schema; write a self-contained model directory."""
