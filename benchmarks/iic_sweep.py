"""Hyperparameter sweep for IICClustering: accuracy traced per epoch.

Used to choose IICClustering's defaults. Each configuration is trained once
per seed (``n_init=1``) and, every ``--every`` epochs, all main sub-heads are
evaluated on the whole dataset (eval mode) against the labels; the trace
records the loss, every sub-head's full-data loss and ACC (best, mean and
worst too), and the wall time. Labels
are used only for this report, never for training or head selection.

Example (GPU, several configurations in parallel)::

    python benchmarks/iic_sweep.py --dataset digits --grid digits \
        --seeds 0 1 2 --epochs 150 --every 10 --workers 8 --out sweep.json
"""

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor

#: what every configuration of a grid starts from (on top of IICClustering's
#: defaults). The digits grids ran before the defaults were chosen from them,
#: so their base spells out the settings of that time.
DIGITS_BASE = dict(n_init=1, head_training="joint", batch_size=64, learning_rate=1e-3, overclustering=50, _perturbation=dict(crop=(0.7, 1.0)))
BASES = {
    "digits": DIGITS_BASE, "digits2": DIGITS_BASE, "digits3": DIGITS_BASE, "mnist": dict(n_init=1),
    "perturbations": dict(n_init=1), "perturbations-mnist": dict(n_init=1),
    "pendigits": dict(n_init=1, perturbation="points"),
}

GRIDS = {
    "digits": {
        "base": {},
        "lr3e-3": dict(learning_rate=3e-3),
        "bs32": dict(batch_size=32),
        "bs128": dict(batch_size=128),
        "alternate": dict(head_training="alternate"),
        "head-default-init": dict(_head_std=None),
        "crop.5": dict(_perturbation=dict(crop=(0.5, 1.0))),
        "crop.85": dict(_perturbation=dict(crop=(0.85, 1.0))),
        "noise.2": dict(_perturbation=dict(noise=0.2)),
        "rot-always": dict(_perturbation=dict(p_rotation=1.0)),
        "mlp": dict(encoder="mlp", hidden_layer_sizes=(512, 512)),
        "no-over": dict(overclustering=0),
        "repeats3": dict(n_repeats=3),
        "lamb1.5": dict(lamb=1.5),
    },
    "digits2": {
        "c85d": dict(_head_std=None, _perturbation=dict(crop=(0.85, 1.0))),
        "c80d": dict(_head_std=None, _perturbation=dict(crop=(0.8, 1.0))),
        "c75d": dict(_head_std=None, _perturbation=dict(crop=(0.75, 1.0))),
        "c85d-noise.2": dict(_head_std=None, _perturbation=dict(crop=(0.85, 1.0), noise=0.2)),
        "c85d-rot15": dict(_head_std=None, _perturbation=dict(crop=(0.85, 1.0), rotation=15)),
        "c85d-trans0": dict(_head_std=None, _perturbation=dict(crop=(0.85, 1.0), translate=0.0)),
        "c85d-over100": dict(_head_std=None, overclustering=100, _perturbation=dict(crop=(0.85, 1.0))),
        "c85d-heads10": dict(_head_std=None, n_heads=10, _perturbation=dict(crop=(0.85, 1.0))),
        "c85d-alternate": dict(_head_std=None, head_training="alternate", _perturbation=dict(crop=(0.85, 1.0))),
        "c85d-bs32": dict(_head_std=None, batch_size=32, _perturbation=dict(crop=(0.85, 1.0))),
        "c85d-lr2e-3": dict(_head_std=None, learning_rate=2e-3, _perturbation=dict(crop=(0.85, 1.0))),
        "c85-bs32": dict(batch_size=32, _perturbation=dict(crop=(0.85, 1.0))),
    },
    "digits3": {
        "o100-c85d": dict(_head_std=None, overclustering=100, _perturbation=dict(crop=(0.85, 1.0))),
        "o100-c85-bs32": dict(overclustering=100, batch_size=32, _perturbation=dict(crop=(0.85, 1.0))),
        "o100-c85d-bs32": dict(_head_std=None, overclustering=100, batch_size=32, _perturbation=dict(crop=(0.85, 1.0))),
        "o200-c85d": dict(_head_std=None, overclustering=200, _perturbation=dict(crop=(0.85, 1.0))),
        "o100-c85d-lr2e-3": dict(_head_std=None, overclustering=100, learning_rate=2e-3, _perturbation=dict(crop=(0.85, 1.0))),
        "o100-c85d-noise.2": dict(_head_std=None, overclustering=100, _perturbation=dict(crop=(0.85, 1.0), noise=0.2)),
        "o100-c75d": dict(_head_std=None, overclustering=100, _perturbation=dict(crop=(0.75, 1.0))),
        "o100-c85d-heads10": dict(_head_std=None, overclustering=100, n_heads=10, _perturbation=dict(crop=(0.85, 1.0))),
        "o100-c85d-rot15": dict(_head_std=None, overclustering=100, _perturbation=dict(crop=(0.85, 1.0), rotation=15)),
    },
    "mnist": {
        "default": {},
        "c16": dict(conv_channels=(16, 32, 64)),
        "c16-bs64": dict(conv_channels=(16, 32, 64), batch_size=64),
        "crop.7": dict(_perturbation=dict(crop=(0.7, 1.0))),
        "c16-crop.7": dict(conv_channels=(16, 32, 64), _perturbation=dict(crop=(0.7, 1.0))),
        "over5x": dict(overclustering=50),
        "c16-lr2e-3": dict(conv_channels=(16, 32, 64), learning_rate=2e-3),
    },
    "perturbations": {
        "affine": dict(perturbation="affine"),
        "elastic": dict(perturbation="elastic"),
        "affine+elastic": dict(perturbation=["affine", "elastic"]),
        "wasserstein": dict(perturbation="wasserstein"),
        "wasserstein(elastic)": dict(_wasserstein=dict(proposal="elastic")),
    },
    "pendigits": {
        "points": {},
        "lamb1.3": dict(lamb=1.3),
        "no-over": dict(overclustering=0),
        "wide": dict(hidden_layer_sizes=(512, 512)),
        "bs128": dict(batch_size=128),
        "points+tabular": dict(perturbation=["points", "tabular"]),
    },
    "perturbations-mnist": {
        "affine": dict(perturbation="affine", conv_channels=(16, 32, 64)),
        "elastic": dict(perturbation="elastic", conv_channels=(16, 32, 64)),
        "affine+elastic": dict(perturbation=["affine", "elastic"], conv_channels=(16, 32, 64)),
        "wasserstein": dict(perturbation="wasserstein", conv_channels=(16, 32, 64)),
    },
}


def run_one(job):
    import numpy as np
    import torch

    torch.set_num_threads(job["threads"])
    import skmic._training as _training
    import skmic.iic as iic_module
    import skmic.nn.heads as heads
    from skmic import IICClustering
    from skmic.benchmark import load_dataset
    from skmic.metrics import cluster_accuracy
    from skmic.perturbations import ImagePerturbation, WassersteinPerturbation, make_perturbation

    X, y, shape = load_dataset(job["dataset"], job.get("data_home"))
    base = BASES[job["grid"]]
    params = dict(base, **job["params"])
    params["_perturbation"] = dict(base.get("_perturbation", {}), **job["params"].get("_perturbation", {}))
    heads.HEAD_INIT_STD = params.pop("_head_std", 0.01)
    if params["_perturbation"]:
        params["perturbation"] = ImagePerturbation(shape, **params["_perturbation"])
    del params["_perturbation"]
    if "_wasserstein" in params:  # a Wasserstein-bounded model around a named proposal
        w = dict(params.pop("_wasserstein"))
        w["proposal"] = make_perturbation(w["proposal"], shape)
        params["perturbation"] = WassersteinPerturbation(shape, **w)
    trace = []
    start = time.perf_counter()
    train = _training.train  # the real loop (workers are reused between jobs)

    model = IICClustering(image_shape=shape, max_epochs=job["epochs"], random_state=job["seed"], **params)
    g = make_perturbation(model.perturbation, shape)

    def traced_train(step, **kw):
        net = kw["modules"][0]
        Xt = torch.as_tensor(X, device=kw["device"]).float()

        def hook(record):
            if record["epoch"] % job["every"] == 0:
                net.eval()
                with torch.no_grad():
                    z = torch.cat([net.main(net(Xt[i : i + 4096])) for i in range(0, len(Xt), 4096)])
                    # the full-data sub-head losses that restart screening and head selection use
                    losses = model._head_losses(net, Xt, g, torch.Generator(Xt.device).manual_seed(0)).tolist()
                net.train()
                accs = [cluster_accuracy(y, z[:, h].argmax(1).cpu().numpy()) for h in range(z.shape[1])]
                trace.append(dict(epoch=record["epoch"], time=time.perf_counter() - start, loss=record["loss"],
                                  best=max(accs), mean=float(np.mean(accs)), worst=min(accs),
                                  head_losses=losses, head_accs=accs))

        return train(step, on_epoch_end=hook, **kw)

    iic_module.train = traced_train
    model.fit(X)

    xb = torch.as_tensor(X[:1024], device=model.device_).float().repeat(5, 1)
    gen = torch.Generator(model.device_).manual_seed(0)
    g(xb, gen)
    if model.device_.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(3):
        g(xb, gen)
    if model.device_.type == "cuda":
        torch.cuda.synchronize()
    perturb_rate = 3 * len(xb) / (time.perf_counter() - t0)
    return dict(
        name=job["name"], seed=job["seed"], trace=trace, perturbed_images_per_s=perturb_rate,
        acc=cluster_accuracy(y, model.labels_), head_losses=model.head_losses_.tolist(),
        time=time.perf_counter() - start,
    )


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="digits")
    p.add_argument("--grid", default="digits", choices=sorted(GRIDS))
    p.add_argument("--only", nargs="*", help="configuration names to run")
    p.add_argument("--params", type=json.loads, default={}, help="JSON overrides for every configuration")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--every", type=int, default=10)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    p.add_argument("--data-home")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    grid = {k: v for k, v in GRIDS[args.grid].items() if not args.only or k in args.only}
    jobs = [
        dict(name=name, grid=args.grid, params=dict(params, **args.params), seed=seed, dataset=args.dataset, epochs=args.epochs,
             every=args.every, threads=args.threads, data_home=args.data_home)
        for name, params in grid.items() for seed in args.seeds
    ]
    results = []
    with ProcessPoolExecutor(args.workers) as pool:
        for r in pool.map(run_one, jobs):
            results.append(r)
            last = r["trace"][-1] if r["trace"] else {}
            print(f"{r['name']:>18} seed={r['seed']} acc={r['acc']:.3f} best-head@end={last.get('best', 0):.3f} "
                  f"g={r['perturbed_images_per_s']:.0f}img/s "
                  f"mean={last.get('mean', 0):.3f} time={r['time']:.0f}s "
                  + " ".join(f"{t['epoch']}:{t['best']:.2f}" for t in r["trace"]), flush=True)
    with open(args.out, "w") as f:
        json.dump(dict(args=vars(args), results=results), f, indent=1)


if __name__ == "__main__":
    main()
