"""Progressive delivery of a model (issue 12): canary steps, blue-green or manual, judged on Prometheus metrics.

Plain Python, standard library only at module level (no KFP import):

- ``policy``: :class:`~.policy.RolloutPolicy` and :class:`~.policy.Thresholds`, checked on construction,
  ``RolloutPolicy.from_params(**flat)`` from the flat pipeline parameters;
- ``metrics``: :class:`~.metrics.PrometheusReader` reads one revision's :class:`~.metrics.RevisionMetrics` over a
  :class:`~.metrics.Window` with the PromQL of :data:`~.metrics.TEMPLATES`;
- ``analysis``: :func:`~.analysis.analyze` compares canary with stable -> :class:`~.analysis.StepAnalysis`;
- ``engine``: :func:`~.engine.run_rollout` drives a :class:`~.engine.TrafficBackend` step by step ->
  :class:`~.engine.RolloutOutcome`;
- ``record``: :func:`~.record.write_analysis` writes the outcome as JSON and Markdown (atomically).

The design, checks, defaults and queries are described in ``docs/rollouts.md``.

Additions to the shared contract (rollout_spec.md), nothing renamed:

- ``metrics.BIN_EDGES`` holds the 21 bucket upper bounds (``le``) of ``kfp_tabular_prediction_score``: 0.05 ..
  1.0 and ``inf``; ``RevisionMetrics.score_counts`` has one count per edge (bin ``i`` is
  ``(BIN_EDGES[i-1], BIN_EDGES[i]]``, the last is the overflow above 1.0, empty for probabilities).
- ``metrics.templates_from_json(text)`` parses the ``prometheus_queries`` parameter (a template name such as
  ``"kserve-knative"`` or a JSON object overriding some queries of ``kfp-tabular``); empty -> the defaults.
- ``metrics.counted(metric, matchers, by)`` builds the PromQL of a count over ``{window}`` (exact per series;
  the templates use it; docs/rollouts.md "Counting over a window").
- ``run_rollout(..., settle_seconds=0.0)``: wait after a window before reading it (the last scrape lands).
- ``StepRecord`` adds ``attempt`` (window number at its step), ``compared_with`` and ``reference`` (the stable
  window the canary was compared with when stable served too little in this one, e.g. at 100%);
  ``RolloutOutcome`` adds ``backend``, ``policy``, ``started_at``, ``finished_at``, ``baseline`` (defaults given).
- ``Check.passed`` is None for a check that could not be judged (no data for it).
- ``RolloutPolicy.max_inconclusive`` must be >= 1 (the number of consecutive inconclusive windows at one step
  that roll back; 0 windows cannot be observed).
- ``RolloutOutcome``/``StepRecord``/``StepAnalysis``/``RevisionMetrics`` have ``to_dict()``.
"""
