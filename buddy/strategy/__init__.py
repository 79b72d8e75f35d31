"""The trader's own strategy (issue 14): entry facts of past trades and new ideas
(``buddy.strategy.facts``), the strategy profile, playbooks discovered from the trades, and
the piece and evaluator that compare a new idea with them. SQL lives in
``buddy.store.strategy``; the facts job in ``buddy.jobs.strategy``."""
