"""Peak memory of fits on memory-mapped data sets of growing size (streamed input).

Example::

    nice -n 19 python benchmarks/memory.py --sizes 10000 100000 1000000 --name memory_streamed_cpu

For every size it writes a synthetic data set of ``--sizes`` rows x
``--features`` float32 values (ten Gaussian clusters) to a ``.npy`` file in
``--dir``, and fits each estimator on ``np.load(path, mmap_mode="r")`` in a
fresh child process, one fit per process, which reports

* ``peak_rss_mb``: the child's peak resident memory (``VmHWM``), which
  counts the pages of the file the process has mapped as well as its own;
* ``peak_anon_mb`` and ``peak_file_mb``: the largest anonymous (the
  process's own: heap, tensors) and file-backed (mapped pages of the data
  file, the per-sample stores and the shared libraries) parts of the
  resident memory (``RssAnon``, ``RssFile``), sampled every 10 ms during
  the fit: what the peak is made of;
* ``import_rss_mb``: its resident memory after importing skmic and torch,
  before reading any data;
* ``fit_time_s``: the fit's wall time.

The fits are cheap in epochs (one, with small networks): what is measured
is the memory of the data's way through ``fit`` -- the validation scan, the
mini-batches of training and every full-data pass -- not the quality of the
clustering. The table's notes give the growth of the peak from the second
largest to the largest size. The data files are deleted at the end (unless
``--keep``); check the free disk first (the largest file of the default
sizes is 3.1 GB).
"""

import argparse
import json
import os
import resource
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

#: the checkout whose skmic the children import (that of this script)
ROOT = Path(__file__).resolve().parents[1]

#: the fits: estimator name -> (class name, parameters)
FITS = {
    "iic": ("IICClustering", dict(n_clusters=10, n_init=1, n_repeats=1, max_epochs=1, hidden_layer_sizes=(16,),
                                  batch_size=1024)),
    # the consensus of the sub-heads (the default for images): their assignments in an on-disk store,
    # k-means over them, the labels from them
    "iic_consensus": ("IICClustering", dict(n_clusters=10, n_init=1, n_repeats=1, max_epochs=1,
                                            hidden_layer_sizes=(16,), batch_size=1024, selection="consensus")),
    "dec": ("DECClustering", dict(n_clusters=10, hidden_layer_sizes=(16,), n_components=10, pretrain="end_to_end",
                                  pretrain_epochs=1, max_epochs=1, batch_size=1024, kmeans_n_init=5,
                                  update_interval=500)),
}


def write_data(path, n_rows, n_features, seed=0, chunk=8192):
    """A ``.npy`` file of ``n_rows`` float32 rows around 10 random centres, written in chunks.

    The noise is one block of ``chunk`` rows drawn once and rolled by a random
    offset for every chunk: the data set is written at the speed of the disk,
    not of the random number generator.
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(10, n_features)).astype(np.float32)
    noise = rng.standard_normal((chunk, n_features), dtype=np.float32)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n_rows, n_features))
    for start in range(0, n_rows, chunk):
        stop = min(start + chunk, n_rows)
        labels = rng.integers(0, 10, stop - start)
        out[start:stop] = centres[labels] + np.roll(noise, int(rng.integers(chunk)), axis=0)[: stop - start]
    out.flush()
    del out


def _rss_mb():
    """This process's peak resident memory (MB): ``VmHWM`` of /proc, else ``ru_maxrss``.

    ``ru_maxrss`` survives ``exec``: a child started by a parent that has
    just written a large memmap would report the parent's peak. ``VmHWM``
    belongs to the child's own address space.
    """
    return _status_mb("VmHWM")[0] or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _status_mb(*fields):
    """Fields of /proc/self/status in MB (0 where absent)."""
    values = dict.fromkeys(fields, 0.0)
    try:
        with open("/proc/self/status") as status:
            for line in status:
                key, _, value = line.partition(":")
                if key in values:
                    values[key] = int(value.split()[0]) / 1024
    except OSError:
        pass
    return [values[f] for f in fields]


class _Sampler:
    """The largest ``RssAnon`` and ``RssFile`` seen, sampled every ``interval`` seconds in a thread."""

    def __init__(self, interval=0.01):
        import threading

        self.peaks, self._stop = [0.0, 0.0], threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        self._thread.start()

    def _run(self, interval):
        while not self._stop.is_set():
            self.peaks = [max(p, v) for p, v in zip(self.peaks, _status_mb("RssAnon", "RssFile"))]
            self._stop.wait(interval)

    def stop(self):
        self._stop.set()
        self._thread.join()
        return self.peaks


def child(estimator, path, threads):
    """Fit one estimator on the memmap at ``path``; print a JSON line with the measurements."""
    import torch

    torch.set_num_threads(threads)
    import warnings

    import skmic

    import_rss = _rss_mb()
    X = np.load(path, mmap_mode="r")
    name, params = FITS[estimator]
    est = getattr(skmic, name)(**params, random_state=0, device="cpu")
    sampler = _Sampler()
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one epoch does not converge; that is not measured
        est.fit(X)
    elapsed = time.perf_counter() - start
    peak_anon, peak_file = sampler.stop()
    print(json.dumps(dict(fit_time_s=elapsed, peak_rss_mb=_rss_mb(), peak_anon_mb=peak_anon,
                          peak_file_mb=peak_file, import_rss_mb=import_rss,
                          n_clusters_found=int(len(np.unique(est.labels_))))))


def run(sizes, n_features, estimators, directory, threads, keep, log=print):
    """The fits' measurements, and None or, if a fit failed or was stopped, what stopped the run.

    A failed fit (or an interruption: ``KeyboardInterrupt``, and SIGTERM
    under :func:`main`) ends the run; the measurements taken so far are kept.
    """
    runs = []
    try:
        _run(sizes, n_features, estimators, directory, threads, keep, log, runs)
    except (RuntimeError, KeyboardInterrupt) as error:
        done = f"{len(runs)} fit(s) done"
        stopped = f"stopped after {done}: {error or type(error).__name__}".splitlines()[0]
        log(stopped)
        return runs, stopped
    return runs, None


def _run(sizes, n_features, estimators, directory, threads, keep, log, runs):
    for n in sizes:
        path = Path(directory) / f"skmic_memory_{n}x{n_features}.npy"
        start = time.perf_counter()
        write_data(path, n, n_features)
        log(f"wrote {path} ({path.stat().st_size / 1e9:.2f} GB) in {time.perf_counter() - start:.0f} s")
        try:
            for est in estimators:
                env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
                           PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
                out = subprocess.run(
                    [sys.executable, __file__, "--child", est, str(path), "--threads", str(threads)],
                    capture_output=True, text=True, env=env,
                )
                if out.returncode:
                    raise RuntimeError(f"the {est} fit on {n} rows failed:\n{out.stderr[-3000:]}")
                result = json.loads(out.stdout.strip().splitlines()[-1])
                runs.append(dict(dataset=f"{n} x {n_features} float32 memmap", estimator=est, seed=0,
                                 n_samples=n, **result))
                log(f"{est} on {n} rows: {result}")
        finally:
            if not keep:
                path.unlink()


def growth_notes(runs):
    """The growth of each estimator's peak memory from the second largest size to the largest."""
    lines = []
    for est in dict.fromkeys(r["estimator"] for r in runs):
        mine = sorted((r for r in runs if r["estimator"] == est), key=lambda r: r["n_samples"])
        if len(mine) < 2:
            continue
        a, b = mine[-2], mine[-1]
        growth = b["peak_rss_mb"] / a["peak_rss_mb"] - 1
        line = (
            f"{est}: peak RSS {a['peak_rss_mb']:.0f} MB at {a['n_samples']} rows, {b['peak_rss_mb']:.0f} MB at "
            f"{b['n_samples']} rows: growth {100 * growth:.1f}% for {b['n_samples'] / a['n_samples']:.0f}x the rows"
        )
        if a.get("peak_anon_mb") and b.get("peak_anon_mb"):
            anon = b["peak_anon_mb"] / a["peak_anon_mb"] - 1
            line += f" (anonymous part: {a['peak_anon_mb']:.0f} -> {b['peak_anon_mb']:.0f} MB, {100 * anon:+.1f}%)"
        lines.append(line + ".")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--features", type=int, default=784)
    parser.add_argument("--estimators", nargs="+", choices=sorted(FITS), default=["iic", "dec"])
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where the data files are written")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the data files")
    parser.add_argument("--name", default=None, help="results file stem (none: print only)")
    parser.add_argument("--out-dir", default="benchmarks/results")
    parser.add_argument("--child", nargs=2, metavar=("ESTIMATOR", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child[0], args.child[1], args.threads)

    from skmic.benchmark import code_version, environment, format_table, save_results

    code_version()  # the commit that runs, taken now

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum} (e.g. kill)")

    signal.signal(signal.SIGTERM, interrupt)  # a stopped run still records what it measured
    runs, stopped = run(args.sizes, args.features, args.estimators, args.dir, args.threads, args.keep)
    if not runs:
        raise SystemExit(stopped)
    notes = growth_notes(runs)
    fits = "; ".join(f"{k}: {name}({', '.join(f'{p}={v!r}' for p, v in params.items())})"
                     for k, (name, params) in FITS.items() if k in args.estimators)
    notes = "\n\n".join([
        "One fit per child process (" + str(args.threads) + " thread(s)), random_state=0, device='cpu'; " + fits + ".",
        "peak_rss_mb: the child's peak resident memory (VmHWM, file-backed pages included); peak_anon_mb, "
        "peak_file_mb: the largest RssAnon and RssFile sampled every 10 ms during the fit; import_rss_mb: its "
        "peak after importing skmic.",
        *notes,
        *([f"The run was {stopped}; the fits after it are missing."] if stopped else []),
    ])
    print(format_table(runs))
    print(notes)
    if args.name:
        command = "python benchmarks/memory.py " + shlex.join(sys.argv[1:] if argv is None else argv)
        env = environment().replace(f"({__import__('torch').get_num_threads()} threads)", f"({args.threads} threads)")
        save_results(runs, args.name, args.out_dir, command=command, notes=notes, env=env)


if __name__ == "__main__":
    main()
