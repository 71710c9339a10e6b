"""Pieces every kfp-tabular component shares: image names, artifact I/O and errors."""
