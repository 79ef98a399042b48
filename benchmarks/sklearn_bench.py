#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""deltaprop.sklearn's MLPClassifier/MLPRegressor against scikit-learn's: fit time and held-out score.

    python benchmarks/sklearn_bench.py [--quick] [--repeats R] [--only digits,synth10,regression]
                                       [--solvers adam,sgd,lbfgs] [--threads N]

Both estimators get the same data, the same parameters and the same number of epochs (lbfgs: of
iterations), in the same process and interleaved (sklearn, deltaprop, sklearn, ...). Stopping on tol is
switched off (n_iter_no_change > max_iter, lbfgs tol=0) so that both do the same work; the iteration
counts are printed. Held-out score: accuracy (classification) or R² (regression) on a split the fit
never sees. The table gives the median fit time (min–max over repeats) and deltaprop's speed-up, and the
same for deltaprop with dtype='float32' (the data converted once; scikit-learn keeps float64).
Thread counts: deltaprop's kernels and numpy's BLAS get --threads each (default: 2). Before each timed
fit the script waits --pause seconds (default 0.3) untimed: OpenBLAS's worker threads keep spinning for
about 0.1 s after its last call, so without the pause scikit-learn's fit would go on using a core during
the next fit's first tenth of a second (deltaprop's pool sleeps as soon as a fit ends).
"""
import argparse
import os
import statistics
import sys
import time
import warnings


def _environment(threads):
    """Thread counts for every BLAS, and OpenBLAS without the overrides that slow it down here (as in
    benchmarks/run.py); re-executes the script once so that they apply before numpy is imported."""
    want = {k: str(threads) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                      "DELTAPROP_NUM_THREADS")}
    drop = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
    if any(os.environ.get(k) != v for k, v in want.items()) or any(k in os.environ for k in drop):
        env = {k: v for k, v in os.environ.items() if k not in drop}
        env.update(want)
        os.execve(sys.executable, [sys.executable] + sys.argv, env)


def datasets(quick):
    import numpy as np
    from sklearn.datasets import load_digits, make_classification, make_regression
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    out = {}
    X, y = load_digits(return_X_y=True)
    out["digits"] = ("c", train_test_split(X / 16.0, y, test_size=0.25, random_state=0),
                     dict(hidden_layer_sizes=(100,), max_iter=60 if quick else 200, batch_size=200))
    n = 20_000 if quick else 100_000
    X, y = make_classification(n + n // 5, 100, n_informative=40, n_redundant=20, n_classes=10,
                               n_clusters_per_class=2, class_sep=1.5, random_state=0)
    X = StandardScaler().fit_transform(X)
    out["synth10"] = ("c", train_test_split(X, y, test_size=n // 5, random_state=0),
                      dict(hidden_layer_sizes=(100,), max_iter=4 if quick else 15, batch_size=200))
    n = 10_000 if quick else 50_000
    X, y = make_regression(n + n // 5, 50, n_informative=30, noise=5.0, random_state=0)
    X = StandardScaler().fit_transform(X)
    y = np.tanh(y / 100.0) * 3 + 0.1 * np.sin(X[:, 0] * 3)  # a nonlinear target
    out["regression"] = ("r", train_test_split(X, y, test_size=n // 5, random_state=0),
                         dict(hidden_layer_sizes=(64, 64), max_iter=8 if quick else 30, batch_size=200))
    return out


SOLVER_PARAMS = {
    "adam": dict(solver="adam", learning_rate_init=1e-3),
    "sgd": dict(solver="sgd", learning_rate_init=0.01, momentum=0.9),
    "lbfgs": dict(solver="lbfgs", tol=0.0),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller data and fewer epochs (a smoke run)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--only", default="digits,synth10,regression")
    ap.add_argument("--solvers", default="adam,sgd,lbfgs")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pause", type=float, default=0.3, help="seconds of rest before each timed fit")
    args = ap.parse_args()
    _environment(args.threads)

    import numpy as np
    import sklearn
    import sklearn.neural_network as skn
    from sklearn.exceptions import ConvergenceWarning

    import deltaprop as dp
    import deltaprop.sklearn as dps

    warnings.simplefilter("ignore", ConvergenceWarning)
    data = datasets(args.quick)
    t_start = time.perf_counter()
    print(f"deltaprop {dp.__version__} (kernel {dp.get_kernel_level()}, {dp.get_num_threads()} threads, "
          f"training API {'native' if hasattr(dp, 'optim') else 'ABSENT: sgd/adam update in numpy'}), "
          f"scikit-learn {sklearn.__version__}, numpy {np.__version__}; threads={args.threads} "
          f"repeats={args.repeats} pause={args.pause:g} s{' quick' if args.quick else ''}")
    head = (f"{'data':<11} {'solver':<6} {'n_train':>8} {'iters':>9} | {'sklearn fit s':>14} "
            f"{'deltaprop fit s':>15} {'speed-up':>8} | {'sklearn score':>13} {'deltaprop score':>15} | "
            f"{'f32 fit s':>9} {'speed-up':>8} {'f32 score':>9}")
    print(head)
    print("-" * len(head))
    rows, rows32 = [], []
    for name in args.only.split(","):
        task, (Xtr, Xte, ytr, yte), base = data[name]
        for solver in args.solvers.split(","):
            params = dict(base, random_state=0, **SOLVER_PARAMS[solver])
            if solver != "lbfgs":
                params["n_iter_no_change"] = params["max_iter"] + 1  # fixed number of epochs
            times = {"sklearn": [], "deltaprop": [], "f32": []}
            fitted = {}
            Xtr32, Xte32 = Xtr.astype(np.float32), Xte.astype(np.float32)
            runs = (("sklearn", skn, Xtr), ("deltaprop", dps, Xtr), ("f32", dps, Xtr32))
            for _ in range(args.repeats):
                for lib, mod, Xfit in runs:
                    est = getattr(mod, "MLPClassifier" if task == "c" else "MLPRegressor")(**params)
                    time.sleep(args.pause)
                    t0 = time.perf_counter()
                    est.fit(Xfit, ytr)
                    times[lib].append(time.perf_counter() - t0)
                    fitted[lib] = est
            sk, ours, ours32 = fitted["sklearn"], fitted["deltaprop"], fitted["f32"]
            med = {k: statistics.median(v) for k, v in times.items()}
            ratio = med["sklearn"] / med["deltaprop"]
            ratio32 = med["sklearn"] / med["f32"]

            def cell(v):
                return f"{statistics.median(v):.3f} ({min(v):.2f}–{max(v):.2f})" if len(v) > 1 else f"{v[0]:.3f}"

            print(f"{name:<11} {solver:<6} {Xtr.shape[0]:>8} {sk.n_iter_:>4}/{ours.n_iter_:<4} | "
                  f"{cell(times['sklearn']):>14} {cell(times['deltaprop']):>15} {ratio:>7.2f}× | "
                  f"{sk.score(Xte, yte):>13.4f} {ours.score(Xte, yte):>15.4f} | "
                  f"{cell(times['f32']):>9} {ratio32:>7.2f}× {ours32.score(Xte32, yte):>9.4f}", flush=True)
            rows.append(ratio)
            rows32.append(ratio32)
    print(f"speed-up float64: min {min(rows):.2f}×, median {statistics.median(rows):.2f}×; float32: min "
          f"{min(rows32):.2f}×, median {statistics.median(rows32):.2f}× (target ≥ 3×); "
          f"wall {time.perf_counter() - t_start:.0f} s")
    print("score: accuracy (digits, synth10) or R² (regression) on the held-out split; iters: sklearn/deltaprop")


if __name__ == "__main__":
    main()
