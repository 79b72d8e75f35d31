"""Portfolio exposure: positions as of t, exposure snapshots, correlation clusters, heat,
volatility, risk contributions and VaR (issue #18)."""
