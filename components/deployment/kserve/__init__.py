"""KServe InferenceServices for kfp-tabular models, shared by the deploy, promote and rollback components.

One module per concept: ``isvc`` (the API and accessors), ``request`` (validated requests), ``manifest``
(rendering), ``client`` (Kubernetes access, guarded writes), ``status`` (DeployStatus), ``readiness`` (the
readiness predicate), ``wait`` (the wait loop), ``plans`` (what a deploy or promote writes), ``rollback``
and ``publish`` (copying a model where KServe can pull it).
"""
