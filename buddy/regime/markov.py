"""Durations and base rates of a Markov chain's states, from its transition matrix alone.

Pure numpy (no hmmlearn), so the regime-fit evaluator can read them cheaply: a state i with
stay probability A_ii lasts a geometric number of bars whose mean is 1 / (1 - A_ii); the
chain's stationary distribution pi (pi @ A = pi) is the share of bars spent in each state,
i.e. what a bar picked at random looks like. ``buddy.regime.hmm.HMMParams.stationary`` uses
the same function.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["expected_stay", "leave_probability", "stationary_distribution"]


def stationary_distribution(transmat: Sequence[Sequence[float]]) -> tuple[float, ...]:
    """Return the stationary distribution pi of ``transmat`` (pi @ A = pi, sum 1).

    Two states in closed form, pi_0 = a_10 / (a_01 + a_10) (0.5 each when neither state is
    ever left); more by least squares, clipped at 0 (a chain with several closed classes gets
    one of its stationary mixes).
    """
    if len(transmat) == 2:
        (_, a01), (a10, _) = transmat
        leave = a01 + a10
        return (a10 / leave, a01 / leave) if leave > 0 else (0.5, 0.5)
    matrix = np.asarray(transmat, dtype=np.float64)
    k = len(matrix)
    system = np.vstack([matrix.T - np.eye(k), np.ones(k)])
    target = np.concatenate([np.zeros(k), [1.0]])
    pi = np.clip(np.linalg.lstsq(system, target, rcond=None)[0], 0.0, None)
    return tuple(float(p) for p in pi / pi.sum())


def leave_probability(weights: np.ndarray, stays: np.ndarray, horizon: np.ndarray
                      ) -> np.ndarray:
    """Return per row 1 - sum_i w_i * A_ii ** h, clamped to [0, 1] (NaN reads as 0).

    ``weights`` and ``stays`` are (rows, states): the state mix (filtered probabilities, or
    the stationary distribution for the base rate) and the matching diagonal of the
    transition matrix, zero-padded; ``horizon`` is in bars (at least 1 is used). The terms
    are added state by state, as ``RegimeSnapshot.transition_risk`` adds them.
    """
    exponent = np.maximum(1, horizon).astype(np.float64)
    stay = np.zeros(len(horizon))
    for i in range(weights.shape[1]):
        stay = stay + weights[:, i] * stays[:, i] ** exponent
    risk = 1.0 - stay
    risk = np.where(risk > 0.0, risk, 0.0)
    return np.where(risk < 1.0, risk, 1.0)


def expected_stay(weights: np.ndarray, stays: np.ndarray) -> np.ndarray:
    """Return per row sum_i w_i / (1 - A_ii): the expected number of bars until the chain
    leaves the state it is in, mixed over ``weights`` (inf when a weighted state is never
    left). Under the Markov chain this is also the expected REMAINING stay, whatever the
    state's age (geometric durations have no memory)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(weights > 0, weights / (1.0 - stays), 0.0)
    return terms.sum(axis=1)
