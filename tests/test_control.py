"""Training a user controls: interruption, callbacks, warm starts and checkpoints."""

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs
from sklearn.preprocessing import StandardScaler

from skmic import Checkpoint, DECClustering, DeepInfoMaxEmbedder, IICClustering, KMeansBaseline
from skmic._training import TrainingControl, train
from skmic.exceptions import TrainingInterruptedWarning


@pytest.fixture
def X():
    X, _ = make_blobs(n_samples=120, centers=3, n_features=4, random_state=0)
    return StandardScaler().fit_transform(X)


def tiny_iic(**kw):
    return IICClustering(**{**dict(
        n_clusters=3, n_heads=2, n_init=2, max_epochs=6, hidden_layer_sizes=(16,), learning_rate=1e-2,
        device="cpu", random_state=0), **kw})


def tiny_dec(**kw):
    # label_change_tol=0 never converges, so the clustering phase runs its max_epochs; 120 samples in
    # batches of 32 are 4 steps an epoch, so update_interval=4 updates at epoch starts
    return DECClustering(**{**dict(
        n_clusters=3, hidden_layer_sizes=(16,), n_components=2, pretrain_epochs=4, kmeans_n_init=2,
        update_interval=4, label_change_tol=0.0, max_epochs=6, batch_size=32, device="cpu", random_state=0), **kw})


def tiny_dim(**kw):  # two networks side by side: the control must hold for all of them
    return DeepInfoMaxEmbedder(**{**dict(
        n_components=3, n_estimators=2, hidden_layer_sizes=(16,), token_channels=4, critic_dim=8, max_epochs=6,
        batch_size=16, device="cpu", random_state=0), **kw})


#: (estimator factory, the stage whose epochs n_iter_ counts)
ESTIMATORS = {
    "IICClustering": (tiny_iic, "training"),
    "DECClustering": (tiny_dec, "clustering"),
    "DeepInfoMaxEmbedder": (tiny_dim, "training"),
}


def interrupt_after(k, stage):
    """A callback that raises KeyboardInterrupt at the end of ``stage``'s k-th epoch."""
    seen = []

    def callback(record):
        if record["stage"] == stage:
            seen.append(record["epoch"])
            if len(seen) == k:
                raise KeyboardInterrupt

    return callback


def output(est, X):
    return est.predict(X) if hasattr(est, "predict") else est.transform(X)


@pytest.mark.parametrize("name", ESTIMATORS)
def test_an_interrupted_fit_keeps_the_model_trained_so_far(name, X):
    make, stage = ESTIMATORS[name]
    est = make(callbacks=[interrupt_after(3, stage)])
    with pytest.warns(TrainingInterruptedWarning, match=r"interrupted .* kept \(n_iter_=3\)"):
        est.fit(X)
    assert est.n_iter_ == 3 and len(est.history_) == 3
    assert len(output(est, X)) == len(X)
    if hasattr(est, "labels_"):
        np.testing.assert_array_equal(est.labels_, est.predict(X))


def test_an_interrupt_during_pretraining_keeps_a_dec_clustered_by_kmeans(X):
    est = tiny_dec(callbacks=[interrupt_after(2, "pretrain end-to-end")])
    with pytest.warns(TrainingInterruptedWarning):
        est.fit(X)
    assert len(est.pretrain_history_) == 2 and est.n_iter_ == 0 and not est.converged_
    assert est.predict(X).shape == (len(X),)


def test_an_interrupt_before_the_first_epoch_leaves_the_estimator_as_it_was(X):
    calls = []

    def perturbation(x, generator):  # a user callable: Ctrl-C in its first call
        calls.append(1)
        if len(calls) > 1:  # the first call is fit's check of the perturbation
            raise KeyboardInterrupt
        return x

    est = tiny_iic(perturbation=perturbation, n_init=1)
    with pytest.raises(KeyboardInterrupt):
        est.fit(X)
    assert not hasattr(est, "n_iter_") and not hasattr(est, "network_")
    fitted = tiny_iic(n_init=1).fit(X)
    network = fitted.network_
    with pytest.raises(KeyboardInterrupt):
        fitted.set_params(perturbation=perturbation).fit(X)
    assert fitted.network_ is network and fitted.n_iter_ == 6  # the previous fit, intact


def test_an_interrupt_mid_epoch_from_a_perturbation_keeps_the_completed_epochs(X):
    steps = []

    def perturbation(x, generator):
        steps.append(1)
        if len(steps) == 1 + 2 * 4 + 2:  # the check, two epochs of 4 steps, 2 steps into the third
            raise KeyboardInterrupt
        return x + 0.1 * torch.randn(x.shape, generator=generator, device=x.device)

    est = tiny_iic(perturbation=perturbation, n_init=1)
    with pytest.warns(TrainingInterruptedWarning):
        est.fit(X)
    assert est.n_iter_ == 2 and est.predict(X).shape == (len(X),)


@pytest.mark.parametrize("name", ESTIMATORS)
def test_a_callback_that_returns_true_stops_training(name, X):
    make, stage = ESTIMATORS[name]
    records = []

    def callback(record):
        records.append(dict(record))
        return record["stage"] == stage and record["epoch"] == 2

    with warnings.catch_warnings():
        warnings.simplefilter("error", TrainingInterruptedWarning)
        est = make(callbacks=[callback]).fit(X)
    assert est.n_iter_ == 2
    assert {"epoch", "loss", "stage"} <= set(records[-1])
    assert records[-1]["stage"] == stage


def test_callbacks_must_be_callables(X):
    with pytest.raises(ValueError, match="callables"):
        tiny_dim(callbacks=["not callable"]).fit(X)


def total_loss(record):
    return float(np.sum(record["loss"]))


@pytest.mark.parametrize("name", ESTIMATORS)
def test_warm_start_continues_training(name, X):
    make, _ = ESTIMATORS[name]
    est = make(max_epochs=6).fit(X)
    first = [total_loss(r) for r in est.history_]
    network = est.network_
    est.set_params(warm_start=True, max_epochs=3).fit(X)
    assert est.n_iter_ == 9 and [r["epoch"] for r in est.history_] == list(range(1, 10))
    assert [total_loss(r) for r in est.history_[:6]] == first  # the record of the first fit, kept
    assert est.network_ is not network  # the fitted network was trained on as a copy
    # no jump: the first continued epoch is nearer the last epoch than the first fit's first epoch
    continued = total_loss(est.history_[6])
    assert abs(continued - first[-1]) < abs(continued - first[0])
    assert len(output(est, X)) == len(X)
    # a cold fit with the same parameters starts over
    cold = make(max_epochs=3).fit(X)
    assert cold.n_iter_ == 3


def test_warm_start_needs_the_fitted_features_and_network_shape(X):
    est = tiny_dim(max_epochs=1).fit(X)
    est.set_params(warm_start=True)
    with pytest.raises(ValueError, match="features"):
        est.fit(X[:, :3])
    with pytest.raises(ValueError, match=r"warm_start=True trains on the fitted network, which has n_components=3"):
        est.set_params(n_components=4).fit(X)
    assert est.n_iter_ == 1
    # without a fitted model, warm_start=True is a cold fit
    assert tiny_dim(max_epochs=2, warm_start=True).fit(X).n_iter_ == 2


def test_train_stops_at_keyboard_interrupt_only_under_a_control():
    w = torch.nn.Parameter(torch.ones(1))
    opt = torch.optim.SGD([w], lr=0.1)

    def step(idx, phase):
        if len(calls) == 5:
            raise KeyboardInterrupt
        calls.append(1)
        return (w**2).sum()

    calls = []
    with pytest.raises(KeyboardInterrupt):
        train(step, n_samples=8, optimizer=opt, max_epochs=5, batch_size=4, device="cpu")
    calls = []
    control = TrainingControl()
    result = train(step, n_samples=8, optimizer=opt, max_epochs=5, batch_size=4, device="cpu", control=control)
    assert result.interrupted and result.n_epochs == 2 and control.interrupted and control.n_epochs == 2
    later = train(step, n_samples=8, optimizer=opt, max_epochs=5, batch_size=4, device="cpu", control=control)
    assert later.n_epochs == 0 and later.interrupted  # the fit's later stages train no epoch


def test_a_checkpoint_is_refused_by_another_fit(X, tmp_path):
    path = tmp_path / "run.ckpt"
    est = tiny_dim(callbacks=[Checkpoint(path), interrupt_after(2, "training")])
    with pytest.warns(TrainingInterruptedWarning):
        est.fit(X)
    assert path.exists()  # an interrupted fit keeps its checkpoint
    with pytest.raises(ValueError, match="saved by another fit"):
        tiny_dim(learning_rate=0.1, callbacks=[Checkpoint(path)]).fit(X)
    with pytest.raises(ValueError, match="every"):
        Checkpoint(path, every=0)


def test_an_interrupted_checkpointed_dec_resumes_where_it_stopped(X, tmp_path):
    path = tmp_path / "dec.ckpt"
    with pytest.warns(TrainingInterruptedWarning):
        tiny_dec(callbacks=[Checkpoint(path), interrupt_after(3, "clustering")]).fit(X)
    stages = []
    resumed = tiny_dec(callbacks=[Checkpoint(path), lambda r: stages.append((r["stage"], r["epoch"]))]).fit(X)
    # pretraining is restored, not rerun; clustering goes on from its last saved epoch (2)
    assert stages == [("clustering", e) for e in range(3, 7)]
    assert not path.exists()  # a completed fit deletes its checkpoint
    straight = tiny_dec().fit(X)
    assert resumed.n_iter_ == straight.n_iter_ == 6
    np.testing.assert_allclose([r["loss"] for r in resumed.history_], [r["loss"] for r in straight.history_], rtol=1e-5)
    np.testing.assert_array_equal(resumed.labels_, straight.labels_)


def test_a_checkpointed_dec_resumes_in_its_second_clustering_phase(X, tmp_path):
    path = tmp_path / "dec.ckpt"
    with pytest.warns(TrainingInterruptedWarning):  # the second phase's second epoch (each phase has 6)
        tiny_dec(clustering_n_init=2, callbacks=[Checkpoint(path), interrupt_after(8, "clustering")]).fit(X)
    stages = []
    record = lambda r: stages.append((r["stage"], r["epoch"]))  # noqa: E731
    resumed = tiny_dec(clustering_n_init=2, callbacks=[Checkpoint(path), record]).fit(X)
    # pretraining and the first phase are restored; the second goes on from its last saved epoch (1)
    assert stages == [("clustering", e) for e in range(2, 7)]
    straight = tiny_dec(clustering_n_init=2).fit(X)
    np.testing.assert_array_equal(resumed.restart_labels_, straight.restart_labels_)
    np.testing.assert_array_equal(resumed.labels_, straight.labels_)
    np.testing.assert_allclose(resumed.restart_losses_, straight.restart_losses_, rtol=1e-12)


KILLED_RUN = """
import sys, time
import torch
torch.set_num_threads(1)
from sklearn.datasets import make_blobs
from sklearn.preprocessing import StandardScaler
from skmic import Checkpoint, IICClustering

X = StandardScaler().fit_transform(make_blobs(n_samples=120, centers=3, n_features=4, random_state=0)[0])

def report(record):
    print(record["epoch"], flush=True)
    time.sleep(0.3)  # leaves the parent time to kill us mid-training

IICClustering(n_clusters=3, n_heads=2, n_init=2, max_epochs=40, hidden_layer_sizes=(16,), learning_rate=1e-2,
              device="cpu", random_state=0, callbacks=[Checkpoint(sys.argv[1], every=2), report]).fit(X)
print("finished", flush=True)
"""


def test_a_checkpointed_run_killed_in_a_subprocess_resumes_and_finishes(X, tmp_path):
    path = tmp_path / "iic.ckpt"
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(KILLED_RUN))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}  # this checkout's skmic
    proc = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        for line in proc.stdout:
            if int(line) >= 5:
                break
        proc.kill()
    finally:
        proc.wait(timeout=60)
    assert proc.returncode != 0 and path.exists()  # killed, not finished
    epochs = []
    params = dict(max_epochs=40, random_state=0)
    resumed = tiny_iic(**params, callbacks=[Checkpoint(path, every=2), lambda r: epochs.append(r["epoch"])]).fit(X)
    assert epochs[0] in (5, 6, 7) and epochs[-1] == 40  # from the last checkpoint (every 2 epochs) to the end
    assert resumed.n_iter_ == 40 and not path.exists()
    straight = tiny_iic(**params).fit(X)
    np.testing.assert_array_equal(resumed.labels_, straight.labels_)
    np.testing.assert_allclose([r["loss"] for r in resumed.history_], [r["loss"] for r in straight.history_], rtol=1e-5)


def slow_kmeans(**kw):
    # 'random' seeds on 400 points of 8 overlapping blobs and tol=0: Lloyd runs for many iterations
    return KMeansBaseline(**{**dict(n_clusters=8, init="random", n_init=3, tol=0.0, device="cpu", random_state=0), **kw})


@pytest.fixture
def blobs8():
    X, _ = make_blobs(n_samples=400, centers=8, n_features=2, cluster_std=2.5, random_state=0)
    return X


def test_an_interrupted_kmeans_keeps_the_centres_reached_so_far(blobs8):
    assert slow_kmeans().fit(blobs8).n_iter_ > 3  # the fit the interrupt cuts short runs longer
    est = slow_kmeans(callbacks=[interrupt_after(3, "k-means")])
    with pytest.warns(TrainingInterruptedWarning, match=r"KMeansBaseline's training was interrupted .* kept \(n_iter_=3\)"):
        est.fit(blobs8)
    assert est.n_iter_ == 3 and [r["epoch"] for r in est.history_] == [1, 2, 3]
    # the centres of the third iteration: what a fit limited to 3 iterations gives
    stopped = slow_kmeans(max_iter=3).fit(blobs8)
    np.testing.assert_array_equal(est.cluster_centers_, stopped.cluster_centers_)
    np.testing.assert_array_equal(est.restart_losses_, stopped.restart_losses_)
    np.testing.assert_array_equal(est.labels_, est.predict(blobs8))
    assert est.inertia_ == est.restart_losses_[est.kept_restarts_[0]] == pytest.approx(-est.score(blobs8))


def test_a_callback_stops_kmeans_and_sees_every_restart(blobs8):
    records = []

    def callback(record):
        records.append(record)
        return record["epoch"] == 2

    with warnings.catch_warnings():
        warnings.simplefilter("error", TrainingInterruptedWarning)
        est = slow_kmeans(callbacks=[callback]).fit(blobs8)
    assert est.n_iter_ == 2 and [r["stage"] for r in records] == ["k-means"] * 2
    # the record: every restart's inertia at its latest assignment, and the lowest of them
    assert len(records[-1]["restart_loss"]) == 3 and records[-1]["loss"] == min(records[-1]["restart_loss"])
    kept = est.kept_restarts_[0]
    assert [r["restart_loss"][kept] for r in records] == [r["loss"] for r in est.history_]


class CountedRows:
    """A row source (``__len__``, ``__getitem__``) that counts its reads and raises KeyboardInterrupt at read ``stop``."""

    def __init__(self, X, stop=None):
        self.X, self.stop, self.reads = X, stop, 0

    def __len__(self):
        return len(self.X)

    def __getitem__(self, index):
        self.reads += 1
        if self.reads == self.stop:
            raise KeyboardInterrupt
        return self.X[index]


def test_an_interrupt_in_the_first_lloyd_iteration_leaves_kmeans_as_it_was(blobs8):
    reads = []
    for max_iter in (1, 2):  # the reads of the validation and seeding, and of one pass over the rows
        source = CountedRows(blobs8)
        slow_kmeans(max_iter=max_iter).fit(source)
        reads.append(source.reads)
    one_pass = reads[1] - reads[0]
    first_lloyd_read = reads[0] - 2 * one_pass + 1  # one iteration and the final assignment: two passes
    fitted = slow_kmeans(max_iter=2).fit(blobs8)
    centres = fitted.cluster_centers_
    with pytest.raises(KeyboardInterrupt):
        fitted.set_params(max_iter=5).fit(CountedRows(blobs8, stop=first_lloyd_read))
    assert fitted.cluster_centers_ is centres and fitted.n_iter_ == 2  # the previous fit, intact
    # a read later, in the second iteration: the first iteration's centres are kept
    with pytest.warns(TrainingInterruptedWarning, match=r"kept \(n_iter_=1\)"):
        fitted.fit(CountedRows(blobs8, stop=first_lloyd_read + one_pass))
    np.testing.assert_array_equal(fitted.cluster_centers_, slow_kmeans(max_iter=1).fit(blobs8).cluster_centers_)


def test_kmeans_refuses_a_checkpoint(blobs8, tmp_path):
    with pytest.raises(ValueError, match="KMeansBaseline saves no Checkpoint"):
        slow_kmeans(callbacks=[Checkpoint(str(tmp_path / "k.ckpt"))]).fit(blobs8)
