"""Shared problems of the contract tests (the paper's scenarios)."""

from __future__ import annotations

import numpy as np
import pytest

from coopml.contracts import ContractProblem, ContractResult, solve_contract

SCENARIOS = {
    1: [0.20, 0.16, 0.12, 0.08, 0.04],
    2: [1.0, 0.85, 0.70, 0.55, 0.40],
    3: [0.5, 0.4, 0.03, 0.02, 0.001],
}


@pytest.fixture(scope="session")
def scenario1() -> tuple[ContractProblem, ContractResult]:
    problem = ContractProblem(10, SCENARIOS[1], [0.2] * 5)
    return problem, solve_contract(problem)


@pytest.fixture(scope="session")
def two_type() -> tuple[ContractProblem, ContractResult]:
    problem = ContractProblem(10, [0.02, 0.01], [0.5, 0.5])
    return problem, solve_contract(problem)


def rng_problem(seed: int, n_types: int = 3, n: int = 6) -> ContractProblem:
    rng = np.random.default_rng(seed)
    costs = np.sort(rng.uniform(0.005, 0.3, n_types))[::-1]
    return ContractProblem(n, costs, rng.dirichlet(np.ones(n_types)) + 0.05)
