"""Experiment tracking: MLflow runs, pyfunc scoring models and replay-gated promotion.

The only package that imports mlflow, and always lazily (``import experiments`` is free):

- ``tracking``: where the store lives (SQLite under ``mlruns/``, or $MLFLOW_TRACKING_URI),
  its experiments, and writes retried while SQLite is locked;
- ``scoring_model`` / ``pyfunc_scoring``: a ScoringConfig as a pyfunc model logged from code;
- ``registry``: register configs as ``buddy-scoring`` versions, load ``production``,
  promote through the gate, roll back;
- ``gate``: gate metrics, tolerances and holdout window; the comparison; the replay scorer;
- ``replay_tracking``: a replay run as an MLflow run (params, calibration metrics, artifacts);
- ``weights``: weight search from a replay's results, each candidate a run;
- ``playbooks`` / ``pyfunc_playbooks``: per-user playbook models (PlaybookFit artifacts) on
  the same promotion path, gated by stability and later-holdout coverage;
- ``playbook_source``: the production playbooks and the publisher ``buddy`` finds through
  its entry points (``trading_buddy.playbook_sources`` / ``playbook_publishers``);
- ``cli``: ``buddy experiments ...``; ``pipeline``: ``make promote-demo``.
"""
