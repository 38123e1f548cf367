"""The little linear algebra the posterior needs: Cholesky factor and triangular solves of small dense
matrices (tens of rows), as lists of rows."""

from __future__ import annotations

import math

Matrix = list[list[float]]
TINY = 1e-12  # a pivot that rounding pushed to zero or below stays positive


def cholesky(matrix: Matrix) -> Matrix:
    """The lower factor L of a symmetric positive definite matrix, ``matrix = L Lᵀ``."""
    size = len(matrix)
    lower = [[0.0] * size for _ in range(size)]
    for i in range(size):
        row_i = lower[i]
        for j in range(i + 1):
            row_j = lower[j]
            value = matrix[i][j] - sum(row_i[k] * row_j[k] for k in range(j))
            row_i[j] = math.sqrt(max(value, TINY)) if i == j else value / row_j[j]
    return lower


def solve_lower(lower: Matrix, vector: list[float]) -> list[float]:
    """x with ``L x = vector``."""
    solution: list[float] = []
    for i, row in enumerate(lower):
        value = vector[i]
        for k, known in enumerate(solution):
            value -= row[k] * known
        solution.append(value / row[i])
    return solution


def solve_upper(lower: Matrix, vector: list[float]) -> list[float]:
    """x with ``Lᵀ x = vector``."""
    size = len(vector)
    solution = [0.0] * size
    for i in range(size - 1, -1, -1):
        value = vector[i]
        for k in range(i + 1, size):
            value -= lower[k][i] * solution[k]
        solution[i] = value / lower[i][i]
    return solution
