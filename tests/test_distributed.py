"""Data-parallel training with torch.distributed: 2 real gloo processes on the CPU.

Each test spawns two processes (``torch.multiprocessing.spawn``) that form a
gloo process group on localhost; every rank runs a function of this module
and writes what it computed to a file, which the test (one process) compares
with a one-process computation on the union of the shards.
"""

import os
import pickle
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from skmic import DECClustering, DeepInfoMaxEmbedder, IICClustering, KMeansBaseline
from skmic import _distributed as distributed
from skmic._data import Rows
from skmic._training import adam
from skmic.metrics import cluster_accuracy
from skmic.nn.encoders import ConvEncoder
from skmic.nn.losses import iic_joint, mutual_information

WORLD = 2


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, port, out_dir, job, args, backend):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    if backend == "nccl":  # one GPU per rank
        torch.cuda.set_device(rank)
    dist.init_process_group(backend, rank=rank, world_size=WORLD)
    try:
        try:
            result = job(*args)
        except Exception as exc:  # reported to the test, which checks it
            result = exc
        Path(out_dir, f"rank{rank}.pkl").write_bytes(pickle.dumps(result))
    finally:
        dist.destroy_process_group()


def run_ranks(tmp_path, job, *args, backend="gloo"):
    """``job(*args)`` on each of 2 ranks (gloo, or NCCL with a GPU each); the list of what each returned (or raised)."""
    mp.spawn(_worker, args=(_free_port(), str(tmp_path), job, args, backend), nprocs=WORLD, join=True)
    return [pickle.loads(Path(tmp_path, f"rank{r}.pkl").read_bytes()) for r in range(WORLD)]


# ------------------------------------------------------------ IIC's joint
def _tiny_net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3), torch.nn.Softmax(-1))


def _data():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(11, 4, generator=g)
    return x, x + 0.3 * torch.randn(11, 4, generator=g)


def _global_mi(net, x, x_pert):
    """Minus the MI of the joint summed over the ranks, and its gradient averaged over them."""
    joint = distributed.all_reduce_sum(iic_joint(net(x), net(x_pert)), differentiable=True)
    loss = -mutual_information(joint)
    loss.backward()
    distributed.average_gradients(net.parameters())
    return joint.detach(), loss.detach(), [p.grad.clone() for p in net.parameters()]


def _joint_and_gradient_job():
    x, x_pert = _data()
    rows = distributed.shard(len(x), pad=False)  # rank 0: 6 rows, rank 1: 5
    return _global_mi(_tiny_net(), x[rows], x_pert[rows]), (rows, distributed.shard(len(x))), _layout()


def _layout():
    """How a rank sees the rows: its shard, its chunks of it, its block."""
    x, _ = _data()
    chunks = list(distributed.shard_chunks(Rows(x, "cpu"), 2))
    rows = distributed.shard(len(x), pad=False)
    return rows, distributed.shard_position(rows), chunks, distributed.shard_size(len(x)), distributed.block(len(x))


def check_layouts(ranks):
    """The layouts the full-data passes rely on (each rank's), and their one-process identities."""
    x, _ = _data()
    for r, (rows, positions, chunks, size, block) in enumerate(ranks):
        assert rows.tolist() == list(range(r, 11, WORLD)) and size == len(rows)
        assert positions.tolist() == list(range(len(rows)))
        # consecutive chunks of 2 * W rows read in order; this rank's rows of each, at their shard positions
        assert [p for p, _ in chunks] == list(range(0, len(rows), 2))
        torch.testing.assert_close(torch.cat([c for _, c in chunks]), x[rows])
    assert [block for *_, block in ranks] == [(0, 5), (5, 11)]
    assert distributed.shard(11) is None and distributed.block(11) == (0, 11)  # one process: everything
    assert distributed.shard_size(11) == 11 and distributed.shard_position(torch.arange(3)).tolist() == [0, 1, 2]


def test_joint_and_gradient_of_the_global_mi(tmp_path):
    ranks = run_ranks(tmp_path, _joint_and_gradient_job)
    check_layouts([layout for *_, layout in ranks])
    ranks = [rank[:2] for rank in ranks]
    # the shards cover every row once; the training shards are of equal size, each within its rank's rows
    (rows0, train0), (rows1, train1) = (shards for _, shards in ranks)
    assert sorted(torch.cat([rows0, rows1]).tolist()) == list(range(11))
    assert len(train0) == len(train1) == 6 and set(train1.tolist()) <= set(rows1.tolist())
    x, x_pert = _data()
    joint, loss, grads = _global_mi(_tiny_net(), x, x_pert)  # one process, the union of the shards
    for (r_joint, r_loss, r_grads), _ in ranks:
        torch.testing.assert_close(r_joint, joint, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(r_loss, loss, rtol=1e-6, atol=1e-6)
        for g_rank, g_one in zip(r_grads, grads):
            torch.testing.assert_close(g_rank, g_one, rtol=1e-5, atol=1e-6)
    # the global MI, not rank 0's own: that one differs
    local = -mutual_information(iic_joint(*(_tiny_net()(t[0::2]) for t in (x, x_pert)))).detach()
    assert not torch.allclose(local, loss, rtol=1e-3)


def _conv_adam_step():
    """One fused-Adam step of a channels-last conv trunk on a fixed batch: its weights, and per parameter
    whether it is contiguous and whether its averaged gradient has its strides.

    Every rank computes the same gradient, so the average over the ranks must
    step exactly as one process does.
    """
    torch.manual_seed(0)
    net = ConvEncoder((1, 8, 8), (4, 8))
    x = torch.randn(6, 64, generator=torch.Generator().manual_seed(1))
    net(x).square().sum().backward()
    distributed.average_gradients(net.parameters())
    layouts = [(p.is_contiguous(), p.grad.stride() == p.stride()) for p in net.parameters()]
    adam(net.parameters(), 0.1).step()
    return [p.detach().clone() for p in net.parameters()], layouts


def test_averaged_gradients_keep_the_parameters_layout(tmp_path):
    # a contiguous gradient of a channels-last weight is read with the weight's strides by
    # torch's fused CPU Adam: the 2-process IIC fits trained on scrambled conv gradients
    weights, layouts = _conv_adam_step()
    assert not all(contiguous for contiguous, _ in layouts)  # some weight is channels-last
    for r_weights, r_layouts in run_ranks(tmp_path, _conv_adam_step):
        assert all(same for _, same in r_layouts)
        for w_rank, w_one in zip(r_weights, weights):
            torch.testing.assert_close(w_rank, w_one, rtol=1e-6, atol=1e-7)


# ----------------------------------------------------------- estimators
def _blobs():
    from sklearn.datasets import make_blobs

    X, y = make_blobs(n_samples=151, centers=3, n_features=4, random_state=0)
    return (X - X.mean(0)) / X.std(0), y


def _fit_job(name, device="cpu"):
    X, y = _blobs()
    est = _estimators()[name].set_params(device=device).fit(X)
    return est.world_size_, est.labels_, getattr(est, "cluster_centers_", None), cluster_accuracy(y, est.labels_)


def _estimators():
    return {
        "kmeans": KMeansBaseline(n_clusters=3, n_init=3, device="cpu", random_state=0),
        "iic": IICClustering(n_clusters=3, n_heads=2, n_init=2, max_epochs=30, hidden_layer_sizes=(16,),
                             learning_rate=1e-2, device="cpu", random_state=0),
        "iic-kmeans": IICClustering(n_clusters=3, n_heads=2, n_init=2, selection="kmeans", max_epochs=30,
                                    hidden_layer_sizes=(16,), learning_rate=1e-2, device="cpu", random_state=0),
        "dec": DECClustering(n_clusters=3, hidden_layer_sizes=(16,), n_components=2, pretrain_epochs=10,
                             kmeans_n_init=2, update_interval=5, max_epochs=20, batch_size=32, device="cpu",
                             random_state=0),
    }


def test_kmeans_equals_the_one_process_fit(tmp_path):
    ranks = run_ranks(tmp_path, _fit_job, "kmeans")
    X, _ = _blobs()
    one = _estimators()["kmeans"].fit(X)
    assert one.world_size_ == 1
    for world, labels, centers, _ in ranks:
        assert world == WORLD
        np.testing.assert_array_equal(labels, one.labels_)
        np.testing.assert_allclose(centers, one.cluster_centers_, rtol=1e-10, atol=1e-12)


@pytest.mark.skipif(torch.cuda.device_count() < WORLD, reason=f"NCCL needs {WORLD} GPUs")
@pytest.mark.parametrize("name", ["kmeans", "iic"])
def test_nccl_fit_on_two_gpus(tmp_path, name):
    """The NCCL path: each rank on its own GPU; k-means equals the one-GPU fit, IIC's replicas agree."""
    ranks = run_ranks(tmp_path, _fit_job, name, "cuda", backend="nccl")
    X, _ = _blobs()
    one = _estimators()[name].set_params(device="cuda").fit(X)
    for world, labels, _, acc in ranks:
        assert world == WORLD
        np.testing.assert_array_equal(labels, ranks[0][1])
        assert acc > 0.9
        if name == "kmeans":
            np.testing.assert_array_equal(labels, one.labels_)


@pytest.mark.slow  # ~30 s
@pytest.mark.parametrize("name", ["iic", "iic-kmeans"])
def test_iic_end_to_end(tmp_path, name):
    ranks = run_ranks(tmp_path, _fit_job, name)
    for world, labels, centers, acc in ranks:
        assert world == WORLD
        np.testing.assert_array_equal(labels, ranks[0][1])  # the replicas agree
        if centers is not None:  # k-means on the kept restarts' features: the same centres on every rank
            np.testing.assert_array_equal(centers, ranks[0][2])
        assert acc > 0.9  # three well separated blobs


def _dim_job():
    from sklearn.datasets import load_digits

    X = load_digits().data[:96].reshape(-1, 8, 8) / 16.0
    est = DeepInfoMaxEmbedder(n_components=3, n_estimators=2, conv_channels=(4,), hidden_layer_sizes=(8,),
                              critic_dim=4, max_epochs=2, batch_size=16, device="cpu", random_state=0).fit(X)
    return est.world_size_, est.transform(X), [len(r["member_loss"]) for r in est.history_]


def test_dim_with_several_networks_trains_one_model_on_every_rank(tmp_path):
    """DIM's networks train side by side in a distributed fit too: the ranks end with the same model."""
    ranks = run_ranks(tmp_path, _dim_job)
    for world, codes, losses in ranks:
        assert world == WORLD and losses == [2, 2]
        np.testing.assert_allclose(codes, ranks[0][1], rtol=1e-6, atol=1e-7)
        assert codes.shape == (96, 3) and np.isfinite(codes).all()


def _streamed_job(path):
    """k-means and DEC on the memmap at ``path``, and DEC on the same rows in memory."""
    X = np.load(path, mmap_mode="r")
    _, y = _blobs()
    fits = {name: _estimators()[name].fit(X) for name in ("kmeans", "dec")}
    in_memory = _estimators()["dec"].fit(np.asarray(X))
    return {
        "world": [est.world_size_ for est in fits.values()],
        "kmeans": (fits["kmeans"].labels_, fits["kmeans"].cluster_centers_),
        "dec": (fits["dec"].labels_, fits["dec"].cluster_centers_, cluster_accuracy(y, fits["dec"].labels_)),
        "dec_in_memory": (in_memory.labels_, in_memory.cluster_centers_),
    }


@pytest.mark.slow  # ~35 s
def test_streamed_fits_on_a_memmap(tmp_path):
    """Both features at once: 2 ranks read a memmap in chunks (k-means' passes, DEC's target).

    k-means equals the one-process fit on the data in memory; DEC's replicas
    agree, cluster the blobs, and equal the 2-process fit on the same rows in
    memory (streaming changes nothing in a distributed fit either).
    """
    X, _ = _blobs()
    np.save(tmp_path / "X.npy", X)
    ranks = run_ranks(tmp_path, _streamed_job, str(tmp_path / "X.npy"))
    one = _estimators()["kmeans"].fit(X)
    for rank in ranks:
        assert not isinstance(rank, Exception), rank
        assert rank["world"] == [WORLD, WORLD]
        np.testing.assert_array_equal(rank["kmeans"][0], one.labels_)
        np.testing.assert_allclose(rank["kmeans"][1], one.cluster_centers_, rtol=1e-10, atol=1e-12)
        labels, centers, acc = rank["dec"]
        np.testing.assert_array_equal(labels, ranks[0]["dec"][0])  # the replicas agree
        assert acc > 0.9  # three well separated blobs
        np.testing.assert_array_equal(labels, rank["dec_in_memory"][0])
        np.testing.assert_allclose(centers, rank["dec_in_memory"][1], rtol=1e-5, atol=1e-6)


def _width_job():
    X, _ = _blobs()
    X = X if dist.get_rank() == 0 else np.hstack([X, X[:, :1]])
    KMeansBaseline(n_clusters=3, device="cpu").fit(X)


def test_ranks_that_disagree_on_the_width_fail_on_every_rank(tmp_path):
    for error in run_ranks(tmp_path, _width_job):
        assert isinstance(error, ValueError)
        assert "rank 0: 151 samples x 4 features, rank 1: 151 samples x 5 features" in str(error)


def test_torchrun_cluster_writes_once(tmp_path):
    """``torchrun --nproc-per-node 2 -m skmic cluster``: one output file, written by rank 0."""
    X, _ = _blobs()
    np.save(tmp_path / "X.npy", X)
    out = tmp_path / "labels.csv"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(_free_port()),
        "-m", "skmic", "cluster", str(tmp_path / "X.npy"), "--method", "kmeans", "--n-clusters", "3",
        "--device", "cpu", "--output", str(out),
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("wrote 151 labels") == 1, proc.stdout
    assert "trained on 2 processes" in proc.stdout
    labels = np.loadtxt(out, skiprows=1)
    assert len(labels) == 151 and len(set(labels)) == 3
