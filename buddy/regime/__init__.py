"""Market regimes: rule-based trend, volatility and liquidity labels plus a walk-forward
Gaussian HMM filtered forward (no look-ahead).

- ``buddy.regime.rules``: trend/volatility/liquidity labels from TA features, named thresholds;
- ``buddy.regime.hmm``: HMM features, fits with several seeds, state ordering, the forward
  filter and the walk-forward schedule;
- ``buddy.regime.snapshots``: one series' regime bar by bar, and its table rows;
- ``buddy.regime.provider``: the ContextPack's ``regime`` piece (stored, else on demand);
- ``buddy.regime.cli``: ``buddy jobs regime`` and ``buddy context regime``.

The job itself lives in ``buddy.jobs.regime``.
"""
