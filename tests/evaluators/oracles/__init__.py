"""Plain-loop statements of evaluator rules, the column forms are checked against."""
