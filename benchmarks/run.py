"""``skmic benchmark`` from a checkout: ``python benchmarks/run.py ARGS`` is ``skmic benchmark ARGS``.

Example::

    python benchmarks/run.py --estimators kmeans sklearn-kmeans \
        --datasets digits mnist --seeds 0 1 2 --name kmeans_vs_sklearn

Writes ``benchmarks/results/<name>.md`` and ``<name>.json`` (see
``skmic benchmark --help``: sweeps, probes, parameters, merges).

Under ``torchrun`` every fit is trained by all the processes together
(``torch.distributed``, gloo on the CPU); rank 0 prints and saves::

    torchrun --nproc-per-node 2 benchmarks/run.py --estimators kmeans --datasets digits --name ddp_2proc
"""

import sys

from skmic.cli import main

if __name__ == "__main__":
    sys.exit(main(["benchmark", *sys.argv[1:]]))
