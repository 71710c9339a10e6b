"""The local rollout rig and demo (issue 12): real Prometheus, nginx and model servers on 127.0.0.1.

- ``rig``: context managers starting the processes (model servers in the serve env, Prometheus, the nginx
  splitter) and waiting until they are ready;
- ``load``: a bounded load generator replaying eval rows as V1 ``instances``, counting outcomes per
  ``X-Served-By``;
- ``scenarios``: the real candidate models (good, shifted, errors, slow) and each scenario's policy;
- ``demo``: ``python -m kfp_tabular.pipelines.rollout.demo [scenario ...]`` (``make rollout-demo``).
"""
