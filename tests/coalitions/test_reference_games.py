"""Reference games: exact values against brute force, efficiency, mask protocols."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from coopml.coalitions.games import airport_game, glove_game, weighted_majority_game
from coopml.coalitions.reference_games import (
    CASTRO_QUOTA,
    CASTRO_WEIGHTS,
    ReferenceGame,
    additive_reference,
    airport_reference,
    castro_airport_costs,
    castro_voting_reference,
    glove_reference,
    harsanyi_reference,
    masks_to_membership,
    miner_reference,
    random_harsanyi_reference,
    reference_suite,
    symmetric_voting_reference,
    weighted_voting_reference,
)


def _small_games() -> list[ReferenceGame]:
    """Every family at 4 to 12 players (and a few at 16), with edge cases."""
    rng = np.random.default_rng(7)
    games: list[ReferenceGame] = []
    for n in (4, 5, 7, 9, 12):
        w = rng.integers(0, 9, size=n)
        w[0] = max(w[0], 1)
        total = int(w.sum())
        games += [
            weighted_voting_reference(w, total // 2 + 1),
            weighted_voting_reference(w, 1),
            weighted_voting_reference(w, total),
            weighted_voting_reference(rng.integers(1, 4, size=n), max(2, n // 3)),
            symmetric_voting_reference(n),
            symmetric_voting_reference(n, quota=n),
            symmetric_voting_reference(n, quota=1),
            glove_reference(n // 2, n - n // 2),
            glove_reference(1, n - 1),
            glove_reference(n - 2, 2),
            airport_reference(rng.integers(0, 5, size=n).astype(float)),  # ties and zeros
            airport_reference(rng.uniform(0, 10, size=n)),
            miner_reference(n),
            additive_reference(rng.normal(size=n)),
            random_harsanyi_reference(n, baseline=-0.7, random_state=n),
            random_harsanyi_reference(n, n_terms=3 * n, max_order=n, random_state=n + 1),
        ]
    games += reference_suite([4, 6, 10], random_state=3)
    games += [
        weighted_voting_reference(rng.integers(1, 30, size=16), 100),
        glove_reference(7, 9),
        airport_reference(rng.integers(1, 6, size=16).astype(float)),
        random_harsanyi_reference(16, baseline=2.0, random_state=16),
    ]
    return games


SMALL = _small_games()


@pytest.mark.parametrize("game", SMALL, ids=lambda g: f"{g.name}-{g.n_players}")
def test_exact_values_match_the_full_table(game: ReferenceGame) -> None:
    table_game = game.to_game()
    np.testing.assert_allclose(game.shapley, table_game.shapley().values, rtol=0, atol=1e-12)
    np.testing.assert_allclose(game.banzhaf, table_game.banzhaf().values, rtol=0, atol=1e-12)
    assert game.empty_value == table_game.table[0]
    assert game.grand_value == table_game.grand_value


def test_tables_match_the_games_module() -> None:
    w = [3, 1, 4, 1, 5, 9, 2]
    np.testing.assert_array_equal(
        weighted_voting_reference(w, 13).to_game().table, weighted_majority_game(w, 13).table
    )
    np.testing.assert_array_equal(glove_reference(3, 4).to_game().table, glove_game(3, 4).table)
    costs = [2.0, 7.0, 1.0, 7.0, 3.0]
    np.testing.assert_array_equal(
        airport_reference(costs).to_game().table, airport_game(costs).table
    )
    assert glove_reference(3, 4).names == glove_game(3, 4).names


@pytest.mark.parametrize(
    "game",
    [
        *reference_suite([20, 50, 100]),
        castro_voting_reference(),
        airport_reference(castro_airport_costs()),
    ],
    ids=lambda g: f"{g.name}-{g.n_players}",
)
def test_shapley_is_efficient(game: ReferenceGame) -> None:
    total = game.grand_value - game.empty_value
    assert math.isclose(game.shapley.sum(), total, rel_tol=1e-12, abs_tol=1e-12)


def test_castro_electoral_college_game() -> None:
    game = castro_voting_reference()
    assert game.n_players == 51 and sum(CASTRO_WEIGHTS) == 538 and CASTRO_QUOTA == 270
    assert game.params["weights"][0] == 45
    # The paper reports 0.08831 for player 0; exact integer counting gives
    # 0.0883093954906150... (Shapley) and 0.3793655639536606... (Banzhaf).
    assert round(float(game.shapley[0]), 5) == 0.08831
    assert abs(game.shapley[0] - 0.08830939549061502) < 1e-14
    assert abs(game.banzhaf[0] - 0.3793655639536606) < 1e-14
    # equal weights, equal values; larger weights, larger values
    w = np.array(CASTRO_WEIGHTS)
    for weight in np.unique(w):
        assert np.ptp(game.shapley[w == weight]) == 0.0
    assert np.all(np.diff(game.shapley) <= 1e-15)
    assert game(frozenset(range(11))) == 1.0  # the 11 largest states hold 272 votes
    assert game(frozenset(range(10))) == 0.0  # 259


def _exact_voting(weights: list[int], quota: int, i: int) -> tuple[float, float]:
    """Shapley and Banzhaf of player i by counting coalitions by (size, weight) exactly."""
    n = len(weights)
    others = [w for j, w in enumerate(weights) if j != i]
    counts = [[0] * quota for _ in range(n)]  # counts[s][t]: coalitions of size s, weight t
    counts[0][0] = 1
    for w in others:
        for s in range(n - 1, 0, -1):
            for t in range(quota - 1, w - 1, -1):
                counts[s][t] += counts[s - 1][t - w]
    window = range(max(0, quota - weights[i]), quota)
    swings = [sum(counts[s][t] for t in window) for s in range(n)]
    shapley = sum(
        c * math.factorial(s) * math.factorial(n - 1 - s) for s, c in enumerate(swings)
    ) / math.factorial(n)
    return shapley, sum(swings) / 2 ** (n - 1)


def test_weighted_voting_matches_exact_counting_at_larger_sizes() -> None:
    rng = np.random.default_rng(1)
    w = rng.integers(1, 6, size=70).tolist()
    q = sum(w) // 2 + 1
    game = weighted_voting_reference(w, q)
    for i in (int(np.argmax(w)), int(np.argmin(w))):
        shapley, banzhaf = _exact_voting(w, q, i)
        assert abs(game.shapley[i] - shapley) <= 1e-14 * shapley
        assert abs(game.banzhaf[i] - banzhaf) <= 1e-14 * banzhaf


@pytest.mark.parametrize("n", [101, 400])
def test_weighted_voting_with_unit_weights_is_symmetric_voting(n: int) -> None:
    quota = n // 2 + 1
    dp = weighted_voting_reference(np.ones(n, dtype=int), quota)
    closed = symmetric_voting_reference(n, quota)
    np.testing.assert_allclose(dp.shapley, closed.shapley, rtol=1e-12)
    np.testing.assert_allclose(dp.banzhaf, closed.banzhaf, rtol=1e-12)
    assert closed.banzhaf[0] == math.comb(n - 1, quota - 1) / 2 ** (n - 1)


def test_closed_forms() -> None:
    np.testing.assert_allclose(miner_reference(7).shapley, 3 / 7)
    assert miner_reference(1).banzhaf.tolist() == [0.0]
    equal = glove_reference(50, 50)
    np.testing.assert_allclose(equal.shapley, 0.5, rtol=1e-14)
    assert equal.grand_value == 50.0
    game = harsanyi_reference(4, [[0, 1, 2], [3]], [3.0, -1.0], additive=[1, 0, 0, 0])
    assert game.shapley.tolist() == [2.0, 1.0, 1.0, -1.0]
    assert game.banzhaf.tolist() == [1.75, 0.75, 0.75, -1.0]
    c = castro_airport_costs()
    game = airport_reference(c)
    assert game.grand_value == 10.0 and game.n_players == 100
    assert game.shapley[0] == pytest.approx(0.01)  # segment 1 shared by all 100 players


def _mask_games() -> list[ReferenceGame]:
    return [
        *reference_suite([10, 62], random_state=5),
        castro_voting_reference(),
        *reference_suite([70], random_state=5),
    ]


@pytest.mark.parametrize("game", _mask_games(), ids=lambda g: f"{g.name}-{g.n_players}")
def test_masks_membership_and_call_agree(game: ReferenceGame) -> None:
    n = game.n_players
    rng = np.random.default_rng(n)
    member = rng.random((40, n)) < rng.uniform(0.05, 0.95, size=(40, 1))
    member[0], member[1] = False, True
    masks = [sum(1 << i for i in np.flatnonzero(row).tolist()) for row in member]
    by_call = np.array([game(frozenset(np.flatnonzero(row).tolist())) for row in member])
    objects = np.empty(len(masks), dtype=object)
    objects[:] = masks
    np.testing.assert_array_equal(game.evaluate_membership(member), by_call)
    np.testing.assert_array_equal(game.evaluate_masks(objects), by_call)
    values = game.evaluate_masks(objects)
    assert values.dtype == np.float64 and values.shape == (40,)
    if n <= 62:
        np.testing.assert_array_equal(game.evaluate_masks(np.array(masks, dtype=np.int64)), by_call)
    else:
        with pytest.raises(ValueError, match="at most 62 players"):
            game.evaluate_masks(np.array([1, 2], dtype=np.int64))
    assert by_call[0] == game.empty_value and by_call[1] == game.grand_value
    assert game.evaluate_masks(np.zeros(0, dtype=object)).shape == (0,)


def test_masks_to_membership_rejects_bad_masks() -> None:
    with pytest.raises(ValueError, match=r"\[0, 2\*\*3\)"):
        masks_to_membership(np.array([8]), 3)
    with pytest.raises(ValueError, match=r"\[0, 2\*\*3\)"):
        masks_to_membership(np.array([-1]), 3)
    with pytest.raises(ValueError, match=r"\[0, 2\*\*3\)"):
        masks_to_membership(np.array([1 << 3], dtype=object), 3)
    with pytest.raises(ValueError, match=r"\[0, 2\*\*70\)"):
        masks_to_membership(np.array([-5], dtype=object), 70)
    with pytest.raises(ValueError, match=r"\[0, 2\*\*70\)"):
        masks_to_membership(np.array([1.5], dtype=object), 70)
    with pytest.raises(TypeError, match="int64 array or an object array"):
        masks_to_membership(np.array([1.0]), 3)
    with pytest.raises(ValueError, match="1-D"):
        masks_to_membership(np.zeros((2, 2), dtype=np.int64), 3)


def test_validation_messages() -> None:
    with pytest.raises(ValueError, match="'quota'"):
        weighted_voting_reference([1, 2], 4)
    with pytest.raises(ValueError, match="integers"):
        weighted_voting_reference([1.5, 2], 2)
    with pytest.raises(ValueError, match="'costs'"):
        airport_reference([1.0, -1.0])
    with pytest.raises(ValueError, match="'coefficients'"):
        harsanyi_reference(3, [[0, 1]], [1.0, 2.0])
    with pytest.raises(ValueError, match="'carriers'"):
        harsanyi_reference(3, [[0, 3]], [1.0])
    with pytest.raises(ValueError, match="at most 20"):
        symmetric_voting_reference(21).to_game()
    with pytest.raises(ValueError, match="'membership'"):
        miner_reference(3).evaluate_membership(np.ones((2, 4), dtype=bool))
    with pytest.raises(ValueError, match="'coalition'"):
        miner_reference(3)(frozenset({3}))
    with pytest.raises(ValueError, match="'sizes'"):
        reference_suite([3])


def test_games_are_immutable_and_picklable() -> None:
    game = reference_suite([8])[-1]
    with pytest.raises(ValueError):
        game.shapley[0] = 1.0
    with pytest.raises(AttributeError):
        game.name = "other"  # type: ignore[misc]
    copy = pickle.loads(pickle.dumps(game))
    masks = np.arange(256)
    np.testing.assert_array_equal(copy.evaluate_masks(masks), game.evaluate_masks(masks))
    assert repr(game) == "ReferenceGame('harsanyi', n_players=8)"


def test_suite_composition() -> None:
    games = reference_suite([20, 30])
    assert [g.n_players for g in games] == [20] * 8 + [30] * 8
    assert len({g.name for g in games}) == 8
    assert games[-1].empty_value == 1.0  # the Harsanyi game has v(empty) != 0
    again = reference_suite([20, 30])
    np.testing.assert_array_equal(games[0].shapley, again[0].shapley)
