"""As-of points on the real sample data shared by every evaluator's point-in-time test."""

PIT_POINTS = [
    ("AAPL", "1d", "2005-02-25T21:00Z"),
    ("AAPL", "1d", "2005-03-01T21:00Z"),
    ("AAPL", "1d", "2012-06-01T21:00Z"),
    ("AAPL", "1w", "2008-10-10T21:00Z"),
    ("MSFT", "1d", "2008-10-10T21:00Z"),
    ("IBM", "1d", "2013-03-08T21:00Z"),
    ("GOOG", "1d", "2004-10-01T21:00Z"),
    ("EURUSD", "1h", "2017-06-15T14:00Z"),
    ("EURUSD", "1h", "2017-12-26T03:00Z"),
    ("EURUSD", "1d", "2017-09-01T23:00Z"),
]
