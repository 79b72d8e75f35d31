"""Behaviour: detectors over the trader's own history, nudges and their experiments (issue #19)."""
