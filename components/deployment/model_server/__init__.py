"""Local KServe model server for kfp-tabular models: model.joblib + metadata.json over the V1 and V2 protocols."""
