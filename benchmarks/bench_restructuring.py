"""CPU time of fixed coopml workloads before and after a restructuring (issue 16).

Wall-clock times on a shared, loaded machine say little; the CPU time of one process
with BLAS and OpenMP limited to one thread much more. This script extracts an older
revision with ``git archive REV | tar -x`` into a temporary directory, then runs each
workload in a fresh subprocess with ``PYTHONPATH=<that dir>/src`` ("before") and with
the working tree's ``src`` ("after"), interleaved (before, after, before, after, ...),
``--reps`` times each (at least 3), and prints one table: the minimum CPU seconds of
the workload (``time.process_time`` inside the child, set-up excluded) before and
after, their ratio, and whether the results agree. Each workload returns its numbers
(Shapley values, payouts, equilibria, ...); the table compares them to 1e-9 and says
``DIFFER`` with the largest difference otherwise.

Only public APIs present in both revisions are used; where a default changed in
between (the federated training budget), the workload states the old meaning
explicitly so that both revisions do the same work.

Usage (from the repository root)::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \\
        .venv/bin/python benchmarks/bench_restructuring.py [--rev 54fa3a8] [--reps 3] \\
        [--quick] [--only NAME,NAME]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
AGREE_TOL = 1e-9

# --------------------------------------------------------------------------- workloads
# Each workload is a set-up function (imports, data; not timed) that returns the timed
# call, which returns a flat list of floats. Imports of coopml happen inside, so that
# the child's PYTHONPATH decides which revision runs; import time is its own workload.


Job = Callable[[], list[float]]


def _parties(m: int, seed: int = 0) -> tuple[list[Any], tuple[Any, Any]]:
    from coopml import load_dataset, make_parties, train_validation_split

    data = load_dataset("breast_cancer")
    X_tr, X_val, y_tr, y_val = train_validation_split(data.X, data.y, 0.3, random_state=0)
    return make_parties(X_tr, y_tr, m, random_state=seed), (X_val, y_val)


def _utility_factory(learner: str, m: int) -> Callable[[], Any]:
    """Set-up (imports, data) now; the returned call builds the utility (timed)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import GaussianNB

    from coopml import CoalitionUtility

    parties, validation = _parties(m)

    def build() -> Any:
        est = GaussianNB() if learner == "nb" else LogisticRegression(max_iter=1000)
        return CoalitionUtility(est, parties, validation, random_state=0)

    return build


def _table_concepts(learner: str, m: int) -> Callable[[], Job]:
    def setup() -> Job:
        from coopml import CoalitionGame

        build = _utility_factory(learner, m)

        def run() -> list[float]:
            game = CoalitionGame.from_utility(build())
            lc = game.least_core()
            return [
                *game.shapley().values.tolist(),
                *game.banzhaf().values.tolist(),
                *lc.values.tolist(),
                float(lc.epsilon),
            ]

        return run

    return setup


def _table_only(m: int) -> Callable[[], Job]:
    def setup() -> Job:
        from coopml import CoalitionGame

        build = _utility_factory("nb", m)

        def run() -> list[float]:
            return [float(v) for v in CoalitionGame.from_utility(build()).table]

        return run

    return setup


def _estimator(name: str, m: int, budget: int) -> Callable[[], Job]:
    def setup() -> Job:
        from coopml.coalitions import (
            MaxEvaluations,
            monte_carlo_shapley,
            msr_banzhaf,
            stratified_shapley,
            svarm_shapley,
        )

        estimators: dict[str, Callable[..., Any]] = {
            "permutation": monte_carlo_shapley,
            "stratified": stratified_shapley,
            "svarm": svarm_shapley,
            "msr": msr_banzhaf,
        }
        fn = estimators[name]
        build = _utility_factory("nb", m)

        def run() -> list[float]:
            result = fn(build(), stopping=MaxEvaluations(budget), random_state=0)
            return [*result.values.tolist(), *result.stderr.tolist()]

        return run

    return setup


def _least_core(n: int, concept: str) -> Callable[[], Job]:
    def setup() -> Job:
        import numpy as np

        from coopml import CoalitionGame

        rng = np.random.default_rng(16)
        w = rng.uniform(0.5, 1.5, n)
        masks = np.arange(1 << n)
        bits = (masks[:, None] >> np.arange(n)) & 1
        table = (bits @ w) ** 1.3 + rng.uniform(0.0, 0.5, 1 << n) * (masks > 0)
        table[0] = 0.0

        def run() -> list[float]:
            game = CoalitionGame(table)
            res = game.least_core() if concept == "least_core" else game.nucleolus()
            return [*res.values.tolist(), float(res.epsilon)]

        return run

    return setup


def _market(root: Path) -> Callable[[], Job]:
    def setup() -> Job:
        from coopml.config import MarketConfig, load_config
        from coopml.market.job import run_market_job
        from coopml.market.settlement import Settlement

        def run() -> list[float]:
            cfg, base = load_config(root / "examples" / "hospitals.toml", MarketConfig)
            settlement = run_market_job(cfg, base, audit=False).result.settlement
            record = json.loads(json.dumps(settlement.to_dict()))
            back = Settlement.from_dict(record)
            check = back.verify()
            if not check.ok:
                raise RuntimeError(f"settlement did not verify: {check}")
            lines = [(p.fee, p.own_gain, p.model_gain, p.share, p.payout) for p in back.parties]
            return [float(v) for line in lines for v in line]

        return run

    return setup


def _fl_simulate(quick: bool) -> Callable[[], Job]:
    def setup() -> Job:
        import numpy as np

        from coopml.federated import simulate
        from coopml.federated.config import TrainingConfig, parse_fl_config

        training: dict[str, Any] = {"model": "logistic", "local_epochs": 1, "batch_size": 16}
        if "budget" in TrainingConfig.model_fields:  # the later default is "local_steps"
            training["budget"] = "epochs"
        raw = {
            "rounds": 3 if quick else 8,
            "random_state": 0,
            "data": {"dataset": "breast_cancer", "n_organisations": 5, "alpha": 0.3},
            "training": training,
            "generator": {"kind": "gmm"},
            "game": {"theta": [1.0, 1.2, 0.8, 1.0, 1.5], "gamma": [0.2, 0.5, 0.5, 0.3, 0.6]},
        }

        def run() -> list[float]:
            result = simulate(parse_fl_config(raw))
            out: list[float] = [float(result.kappa)]
            for name in sorted(result.strategies):
                s = result.strategies[name]
                for arr in (s.accuracy_per_round, s.synthetic, s.transfers):
                    out.extend(np.asarray(arr, dtype=float).ravel().tolist())
            return out

        return run

    return setup


def _fl_equilibrium(n_games: int) -> Callable[[], Job]:
    def setup() -> Job:
        import numpy as np

        from coopml.federated import AccuracyCurve, RoundGame, nash_equilibrium, social_optimum

        def run() -> list[float]:
            rng = np.random.default_rng(4)
            out: list[float] = []
            for _ in range(n_games):
                n = 8
                game = RoundGame(
                    n=rng.integers(50, 500, n).astype(float),
                    h0=rng.uniform(0.1, 0.6, n),
                    theta=rng.uniform(1.0, 2.0, n),
                    gamma=rng.uniform(0.0, 0.4, n),
                    c=rng.uniform(5e-5, 5e-4, n),
                    kappa=0.8,
                    mu=0.3,
                    s_max=rng.uniform(100, 1000, n),
                    curve=AccuracyCurve(0.95, 2.0, 0.5),
                )
                out.extend(nash_equilibrium(game).s.tolist())
                out.extend(social_optimum(game).s.tolist())
            return out

        return run

    return setup


def _contracts(n: int) -> Callable[[], Job]:
    def setup() -> Job:
        from coopml.contracts import ContractProblem, solve_contract

        costs = [0.20, 0.16, 0.12, 0.08, 0.04]  # bench_contracts.py's scenario 1

        def run() -> list[float]:
            res = solve_contract(ContractProblem(n, costs, [1.0] * len(costs)))
            return [*res.contributions.tolist(), *res.rewards.tolist(), float(res.verified)]

        return run

    return setup


def _finetuning() -> Callable[[], Job]:
    def setup() -> Job:
        import numpy as np

        from coopml.finetuning import bargain, three_regimes_game

        def run() -> list[float]:
            res = bargain(three_regimes_game(), method="numerical")
            out: list[float] = []
            for name in sorted(res.solutions):
                delta = res.solutions[name].delta
                out.extend(np.atleast_1d(np.asarray(delta, dtype=float)).tolist())
            return out

        return run

    return setup


def _imports() -> Callable[[], Job]:
    """The import of every module the other workloads use (timed itself)."""

    def setup() -> Job:
        def run() -> list[float]:
            import importlib

            for module in (
                "coopml",
                "coopml.coalitions",
                "coopml.config",
                "coopml.market.job",
                "coopml.federated",
                "coopml.contracts",
                "coopml.finetuning",
            ):
                importlib.import_module(module)
            return []

        return run

    return setup


def _repeat(setup: Callable[[], Job], times: int) -> Callable[[], Job]:
    """``setup`` whose timed call runs ``times`` times (small workloads; the table
    divides by ``times``); the numbers of every call must agree."""

    def repeated() -> Job:
        inner = setup()

        def run() -> list[float]:
            first = inner()
            for _ in range(times - 1):
                if inner() != first:
                    raise RuntimeError("a workload gave different numbers when repeated")
            return first

        return run

    return repeated


def workloads(quick: bool, root: Path) -> dict[str, Callable[[], Job]]:
    """The fixed workloads by name: set-up functions returning the timed call. Those
    under about a second run several times in the timed call (``xK`` in the name);
    the table shows CPU seconds per call."""
    m_mc, budget = (12, 1500) if quick else (20, 30_000)
    m_lr = 8 if quick else 10
    m_table = 12 if quick else 16
    n_lc = 12 if quick else 16
    k = 1 if quick else 0  # quick: every workload once
    return {
        "import coopml and the modules below": _imports(),
        f"table GaussianNB M=10 (shapley, banzhaf, least core) x{k or 20}": _repeat(
            _table_concepts("nb", 10), k or 20
        ),
        f"table LogisticRegression M={m_lr} (same) x{k or 4}": _repeat(
            _table_concepts("lr", m_lr), k or 4
        ),
        f"table GaussianNB M={m_table} (table only)": _table_only(m_table),
        f"permutation MC, M={m_mc}, {budget} evaluations": _estimator("permutation", m_mc, budget),
        f"stratified, M={m_mc}, {budget} evaluations": _estimator("stratified", m_mc, budget),
        f"SVARM, M={m_mc}, {budget} evaluations": _estimator("svarm", m_mc, budget),
        f"MSR Banzhaf, M={m_mc}, {budget} evaluations": _estimator("msr", m_mc, budget),
        f"least core, random game n={n_lc} x{k or 20}": _repeat(
            _least_core(n_lc, "least_core"), k or 20
        ),
        f"nucleolus, random game n={n_lc} x{k or 20}": _repeat(
            _least_core(n_lc, "nucleolus"), k or 20
        ),
        f"market round hospitals.toml + settlement x{k or 3}": _repeat(_market(root), k or 3),
        f"fl simulate (5 orgs, gmm, logistic, {3 if quick else 8} rounds)": _fl_simulate(quick),
        f"fl game: NE + social optimum, {40 if quick else 200} games": _fl_equilibrium(
            40 if quick else 200
        ),
        f"contracts: scenario 1, N={6 if quick else 10} x{k or 10}": _repeat(
            _contracts(6 if quick else 10), k or 10
        ),
        "fine-tuning bargain: three regimes": _finetuning(),
    }


# --------------------------------------------------------------------------- child


SKIP_PREIMPORT = ("service", "flower", "custody", "cli", "plots", "torch", "ray", "agent")
THIRD_PARTY = ("scipy.optimize", "scipy.stats", "scipy.linalg", "scipy.sparse", "scipy.special")


def _preimport() -> None:
    """Import every module of the coopml subpackages already loaded (but the service,
    CLI, plots and optional back-ends) and SciPy's solvers before timing, so that lazy
    imports, which moved between revisions, do not count as work."""
    import importlib
    import pkgutil

    for module in THIRD_PARTY:
        importlib.import_module(module)
    loaded = {m.split(".")[1] for m in list(sys.modules) if m.startswith("coopml.")}
    for sub in sorted(loaded):
        if sub in SKIP_PREIMPORT:
            continue
        package = sys.modules.get(f"coopml.{sub}")
        for info in pkgutil.walk_packages(getattr(package, "__path__", []), f"coopml.{sub}."):
            if any(part in SKIP_PREIMPORT for part in info.name.split(".")):
                continue
            try:
                importlib.import_module(info.name)
            except Exception:  # an optional dependency missing: that module is not used here
                continue


def child(name: str, quick: bool, root: Path, expect_src: Path) -> None:
    """Run one workload and print one JSON line: CPU seconds and the numbers."""
    import warnings

    warnings.filterwarnings("ignore")
    job_setup = workloads(quick, root)[name]
    if name.startswith("import"):  # the import itself is timed
        start = time.process_time()
        job = job_setup()
        values = job()
        cpu = time.process_time() - start
    else:
        job = job_setup()
        _preimport()
        start = time.process_time()
        values = job()
        cpu = time.process_time() - start
    import coopml

    where = Path(coopml.__file__).resolve()
    if expect_src.resolve() not in where.parents:
        raise SystemExit(f"coopml imported from {where}, expected under {expect_src}")
    times = (
        int(name.rsplit(" x", 1)[1]) if " x" in name and name.rsplit(" x", 1)[1].isdigit() else 1
    )
    print(json.dumps({"cpu": cpu / times, "values": values}))


# --------------------------------------------------------------------------- parent


def run_child(name: str, quick: bool, root: Path) -> dict[str, Any]:
    env = dict(os.environ)
    for var in THREAD_VARS:
        env[var] = "1"
    src = root / "src"
    env["PYTHONPATH"] = str(src)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--root", str(root)]
    if quick:
        cmd.append("--quick")
    before = os.times()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=str(root))
    after = os.times()
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["cpu_total"] = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    return out


def agreement(a: list[float], b: list[float]) -> str:
    if len(a) != len(b):
        return f"DIFFER (length {len(a)} vs {len(b)})"
    if not a:
        return "agree (no numbers)"
    diff = max(abs(x - y) for x, y in zip(a, b, strict=True))
    return f"agree ({diff:.0e})" if diff <= AGREE_TOL else f"DIFFER (max |diff| {diff:.2e})"


def load() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--rev", default="54fa3a8", help="the 'before' revision (default 54fa3a8)")
    p.add_argument("--reps", type=int, default=3, help="runs per revision (minimum taken)")
    p.add_argument("--quick", action="store_true", help="smaller sizes")
    p.add_argument("--only", default="", help="comma-separated substrings of workload names")
    p.add_argument("--child", default="", help=argparse.SUPPRESS)
    p.add_argument("--root", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        root = Path(args.root)
        child(args.child, args.quick, root, root / "src")
        return
    if args.reps < 1:
        p.error(f"--reps must be at least 1; got {args.reps}")
    names = list(workloads(args.quick, ROOT))
    if args.only:
        keys = [k.strip().lower() for k in args.only.split(",") if k.strip()]
        names = [n for n in names if any(k in n.lower() for k in keys)]
        if not names:
            p.error(f"--only {args.only!r} matches no workload")
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "src"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="coopml-before-") as tmp:
        archive = subprocess.Popen(["git", "archive", args.rev], cwd=ROOT, stdout=subprocess.PIPE)
        subprocess.run(["tar", "-x", "-C", tmp], stdin=archive.stdout, check=True)
        if archive.wait() != 0:
            raise SystemExit(f"git archive {args.rev} failed")
        before_root = Path(tmp)
        print(
            f"before: {args.rev} (git archive); after: working tree (HEAD {head}"
            f"{', src modified' if dirty else ''}); {args.reps} runs each, interleaved; "
            f"one thread; {'quick' if args.quick else 'full'} sizes"
        )
        print(f"load average at start: {load()}\n", flush=True)
        rows = []
        t0 = time.perf_counter()
        for name in names:
            runs: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
            for _ in range(args.reps):
                runs["before"].append(run_child(name, args.quick, before_root))
                runs["after"].append(run_child(name, args.quick, ROOT))
            rows.append((name, runs, load()))
            print(f"  done: {name} (load {rows[-1][2]})", file=sys.stderr, flush=True)
        elapsed = time.perf_counter() - t0
    print(
        "| workload | CPU s before | CPU s after | ratio | child CPU s before / after "
        "| results | load |"
    )
    print("|---|---:|---:|---:|---:|---|---|")
    for name, runs, ld in rows:
        errors = [r["error"] for side in runs.values() for r in side if "error" in r]
        if errors:
            print(f"| {name} | | | | | ERROR: {errors[0][:80]} | {ld} |")
            continue
        b = min(r["cpu"] for r in runs["before"])
        a = min(r["cpu"] for r in runs["after"])
        bt = min(r["cpu_total"] for r in runs["before"])
        at = min(r["cpu_total"] for r in runs["after"])
        same = agreement(runs["before"][0]["values"], runs["after"][0]["values"])
        repeat = all(
            agreement(r["values"], side[0]["values"]).startswith("agree")
            for side in runs.values()
            for r in side
        )
        note = same if repeat else same + "; NOT REPEATABLE within a revision"
        ratio = a / b if b > 0 else float("nan")
        print(f"| {name} | {b:.2f} | {a:.2f} | {ratio:.2f} | {bt:.1f} / {at:.1f} | {note} | {ld} |")
    print(f"\nelapsed {elapsed:.0f} s wall; load average at end: {load()}")


if __name__ == "__main__":
    main(sys.argv[1:])
