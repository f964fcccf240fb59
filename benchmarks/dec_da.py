"""DEC with data augmentation (DEC-DA) with a custom image perturbation.

``benchmarks/run.py --params`` takes JSON, so it can name a perturbation
(``"affine"``) but not set its parameters; this script builds an
:class:`skmic.perturbations.ImagePerturbation` from ``--augmentation`` (its
keyword arguments) and passes it to DECClustering. Writes
benchmarks/results/<name>.md and .json in the format of run.py.

That augmentation is now also the named perturbation ``"shift-rotate"``
(the same callable, so ``run.py --estimators dec --params
'{"perturbation": "shift-rotate", ...}'`` gives the same results); this
script remains for other settings.

Example (the DEC-DA paper's augmentation: shifts of 10% and rotations of
10 degrees, nothing else)::

    python benchmarks/dec_da.py --dataset digits --seeds 0 1 2 \\
        --augmentation '{"rotation": 10, "p_rotation": 1.0, "scale": [1, 1], "shear": 0,
                         "translate": 0.1, "crop": null, "brightness": 0, "contrast": 0, "noise": 0}' \\
        --params '{"rescale_input": true}' --name dec_da_digits_cpu
"""

import argparse
import json
import shlex
import sys

from skmic import DECClustering
from skmic.benchmark import fit_and_score, load_dataset, save_results
from skmic.perturbations import ImagePerturbation


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="digits")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--augmentation", type=json.loads, default={}, help="ImagePerturbation keyword arguments")
    p.add_argument("--params", type=json.loads, default={}, help="DECClustering parameters")
    p.add_argument("--data-home")
    p.add_argument("--name", required=True)
    p.add_argument("--out-dir", default="benchmarks/results")
    p.add_argument("--notes", default="")
    args = p.parse_args(argv)
    X, y, shape = load_dataset(args.dataset, args.data_home)
    g = ImagePerturbation(shape, **args.augmentation)
    runs = []
    for seed in args.seeds:
        dec = DECClustering(len(set(y)), perturbation=g, random_state=seed, **args.params)
        runs.append(fit_and_score(dec, X, y, dataset=args.dataset, estimator="dec-da", seed=seed))
        print(json.dumps(runs[-1]), flush=True)
    command = "python benchmarks/dec_da.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    print(save_results(runs, args.name, args.out_dir, command=command, notes=args.notes))


if __name__ == "__main__":
    main()
