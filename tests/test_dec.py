"""DECClustering end to end, on tiny networks."""

import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skmic import DECClustering
from skmic.metrics import cluster_accuracy, cluster_accuracy_scorer


def tiny(**kw):
    params = dict(n_clusters=3, hidden_layer_sizes=(16,), n_components=2, pretrain_epochs=20, kmeans_n_init=3,
                  update_interval=5, max_epochs=50, batch_size=32, device="cpu", random_state=0)
    params.update(kw)
    return DECClustering(**params)


def test_clusters_blobs_and_api(blobs):
    X, y = blobs
    dec = tiny().fit(X)
    assert cluster_accuracy(y, dec.labels_) > 0.95
    q = dec.predict_proba(X)
    np.testing.assert_allclose(q.sum(1), 1, rtol=1e-9)
    np.testing.assert_array_equal(dec.predict(X), q.argmax(1))
    np.testing.assert_array_equal(dec.labels_, dec.predict(X))  # labels_ are DEC's own q
    assert dec.transform(X).shape == (len(X), 2) and dec.cluster_centers_.shape == (3, 2)
    assert [r["epoch"] for r in dec.history_] == list(range(1, dec.n_iter_ + 1))
    assert "delta_label" in dec.history_[-1] and dec.pretrain_history_ and dec.n_iter_ >= 1
    # score: minus KL(P || Q) on X, at most 0, and GridSearchCV needs no scoring
    assert dec.score(X) <= 0 and dec.score(X) == pytest.approx(dec.score(X.copy()))


def test_stops_on_tol_and_warns_at_max_epochs(blobs):
    X, _ = blobs
    dec = tiny(label_change_tol=0.5).fit(X)  # half the labels would have to change: stops at the second update
    # 120 samples in batches of 32: 4 steps an epoch; the second update is at step 5, in epoch 2
    assert dec.converged_ and dec.n_iter_ == 2 and dec.history_[-1]["delta_label"] < 0.5
    with pytest.warns(ConvergenceWarning, match="max_epochs=3"):
        dec = tiny(label_change_tol=0.0, max_epochs=3, update_interval=100).fit(X)
    assert not dec.converged_ and dec.n_iter_ == 3


def test_rescale_input(blobs):
    X, _ = blobs
    dec = tiny(rescale_input=True).fit(X)
    assert dec.input_scale_ == pytest.approx(1 / np.sqrt(np.mean(X ** 2)))
    # one constant for the whole data: fitting on 5 * X gives the same model of X
    big = tiny(rescale_input=True).fit(5 * X)
    assert big.input_scale_ == pytest.approx(dec.input_scale_ / 5)
    np.testing.assert_array_equal(big.labels_, dec.labels_)
    np.testing.assert_allclose(big.transform(5 * X), dec.transform(X), rtol=1e-3, atol=1e-4)
    raw = tiny().fit(X)  # off by default
    assert raw.input_scale_ == 1.0
    assert not np.allclose(raw.transform(X), dec.transform(X))
    assert tiny(rescale_input=True).fit(np.zeros((30, 4))).input_scale_ == 1.0


def test_idec_reduces_to_dec_at_zero_weight(blobs):
    X, _ = blobs
    a = tiny(reconstruction_weight=0.0).fit(X)
    b = tiny().fit(X)
    np.testing.assert_allclose(a.transform(X), b.transform(X))
    c = tiny(reconstruction_weight=1.0).fit(X)
    assert not np.allclose(c.transform(X), b.transform(X))


def test_greedy_pretraining(blobs):
    X, y = blobs
    dec = tiny(pretrain="greedy", hidden_layer_sizes=(16, 8), pretrain_epochs=10).fit(X)
    stages = {r["stage"] for r in dec.pretrain_history_}
    assert stages == {"pretrain layer 1", "pretrain layer 2", "pretrain layer 3", "pretrain end-to-end"}
    assert cluster_accuracy(y, dec.labels_) > 0.9


def test_pretrained_encoder_is_used_and_not_modified(blobs):
    X, y = blobs
    torch.manual_seed(0)
    enc = torch.nn.Linear(4, 2).double()
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    dec = tiny(pretrained_encoder=enc).fit(X)
    assert dec.pretrain_history_ == []
    for k, v in enc.state_dict().items():
        torch.testing.assert_close(v, before[k])
    assert dec.network_ is not enc
    with pytest.raises(ValueError, match="needs a decoder"):
        tiny(pretrained_encoder=enc, reconstruction_weight=1.0).fit(X)


class _Broken(torch.nn.Module):
    """An encoder returning ``out(x)``: a user module that misbehaves."""

    def __init__(self, out):
        super().__init__()
        self.linear, self.out = torch.nn.Linear(4, 2), out

    def forward(self, x):
        return self.out(self.linear(x))


@pytest.mark.parametrize("encoder, match", [
    (torch.nn.Linear(3, 2), r"pretrained_encoder failed on a batch of X of shape \(8, 4\): RuntimeError: "
                            r"mat1 and mat2 shapes cannot be multiplied.*n_features=4"),
    (_Broken(lambda z: z[:, 0]), r"returned \(8,\) for a batch of X of shape \(8, 4\)"),
    (_Broken(lambda z: (z, z)), r"returned tuple"),
    (_Broken(lambda z: z / 0), "NaN or infinity"),
])
def test_pretrained_encoder_that_does_not_fit_the_data_is_a_value_error(blobs, encoder, match):
    X, _ = blobs
    dec = tiny(pretrained_encoder=encoder)
    with pytest.raises(ValueError, match=match):
        dec.fit(X)
    assert not hasattr(dec, "n_features_in_")


def test_exploding_embedding_is_a_divergence(blobs):
    from skmic._training import TrainingDivergedError

    X, _ = blobs
    with pytest.raises(TrainingDivergedError, match=r"embedding grew from .* more than 1000 times; lower learning_rate"):
        tiny(learning_rate=1e6).fit(X)


def test_reproducible_and_pickle(blobs):
    X, _ = blobs
    a, b = tiny().fit(X), tiny().fit(X)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    again = pickle.loads(pickle.dumps(a))
    np.testing.assert_allclose(again.predict_proba(X), a.predict_proba(X))


def test_pipeline_and_grid_search(blobs):
    X, y = blobs
    X = X * [1, 100, 0.01, 1]
    pipe = make_pipeline(StandardScaler(), tiny()).fit(X)
    assert cluster_accuracy(y, pipe.predict(X)) > 0.9
    search = GridSearchCV(make_pipeline(StandardScaler(), tiny()), {"decclustering__n_clusters": [2, 3]},
                          scoring=cluster_accuracy_scorer, cv=2).fit(X, y)
    assert search.best_params_ == {"decclustering__n_clusters": 3}


def test_bad_input_and_nan_training(blobs):
    X, _ = blobs
    with pytest.raises(ValueError, match="n_clusters=500"):
        tiny(n_clusters=500).fit(X)
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        tiny(hidden_layer_sizes=(0,)).fit(X)
    dec = tiny(learning_rate=1e12, pretrain_learning_rate=1e6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(FloatingPointError):
            dec.fit(X * 1e6)
    assert not hasattr(dec, "labels_") and not hasattr(dec, "network_")


def _compactness_reference(Z, labels):
    """Within-cluster over total sum of squares, by loops over the clusters."""
    within = sum(((Z[labels == k] - Z[labels == k].mean(0)) ** 2).sum() for k in np.unique(labels))
    return within / ((Z - Z.mean(0)) ** 2).sum()


def test_compactness_against_reference():
    from skmic.dec import compactness

    rng = np.random.default_rng(0)
    Z = rng.normal(size=(50, 3))
    labels = rng.integers(0, 4, 50)
    labels[labels == 2] = 1  # an empty cluster counts nothing
    assert compactness(torch.tensor(Z), torch.tensor(labels), 4) == pytest.approx(_compactness_reference(Z, labels))
    points = np.repeat(np.eye(3), 5, axis=0)  # every cluster a point
    assert compactness(torch.tensor(points), torch.tensor(np.repeat([0, 1, 2], 5)), 3) == 0.0
    assert compactness(torch.ones(6, 2), torch.tensor([0, 0, 0, 1, 1, 1]), 2) == 1.0


def test_restarts_keep_the_most_compact_run(blobs):
    X, _ = blobs
    one = tiny(pretrain_epochs=3, max_epochs=5).fit(X)
    three = tiny(pretrain_epochs=3, max_epochs=5, n_init=3, selection="compactness").fit(X)
    assert three.selection_ == "compactness" and one.selection_ == "compactness"
    scores = three.restart_losses_
    assert scores.shape == (3,) and one.restart_losses_.shape == (1,)
    assert scores[0] == pytest.approx(one.restart_losses_[0])  # the first run is the single run
    assert len(set(np.round(scores, 6))) > 1  # the runs differ
    kept = np.argmin(scores)
    assert three.kept_restarts_.tolist() == [kept] and one.kept_restarts_.tolist() == [0]
    assert _compactness_reference(three.transform(X), three.labels_) == pytest.approx(scores[kept], rel=1e-4)
    if kept == 0:
        np.testing.assert_array_equal(three.labels_, one.labels_)


def _agreement_reference(labelings):
    """Mean adjusted Rand index with the others, from the pair-counting formula."""
    from math import comb

    def ari(a, b):
        n = len(a)
        table = np.zeros((a.max() + 1, b.max() + 1), dtype=int)
        np.add.at(table, (a, b), 1)
        index = sum(comb(int(v), 2) for v in table.ravel())
        rows, cols = sum(comb(int(v), 2) for v in table.sum(1)), sum(comb(int(v), 2) for v in table.sum(0))
        expected = rows * cols / comb(n, 2)
        return (index - expected) / ((rows + cols) / 2 - expected)

    return np.array([np.mean([ari(a, b) for b in labelings if b is not a]) for a in labelings])


def test_agreement_against_reference_and_medoid():
    from skmic.dec import agreement

    rng = np.random.default_rng(0)
    truth = np.repeat(np.arange(4), 25)
    merged = np.where(truth == 1, 0, truth)  # two clusters merged
    split = truth.copy()
    split[truth == 2] = rng.choice([2, 3], 25)  # one cluster split, another moved
    noisy = np.where(rng.random(100) < 0.1, rng.integers(0, 4, 100), truth)
    labelings = [merged, noisy, split, truth]
    np.testing.assert_allclose(agreement(labelings), _agreement_reference(labelings), rtol=1e-12)
    # the runs that made different mistakes agree most with the one that made none
    assert np.argmax(agreement([merged, split, truth])) == 2
    np.testing.assert_allclose(agreement([truth, 3 - truth]), [1.0, 1.0])  # the label names do not matter


def test_restarts_keep_the_run_that_agrees_most(blobs, monkeypatch):
    X, _ = blobs
    from skmic.dec import agreement

    runs = []
    original = DECClustering._cluster

    def recording(self, *args, **kwargs):  # the real clustering phase, its runs kept for the test
        runs.append(original(self, *args, **kwargs))
        return runs[-1]

    monkeypatch.setattr(DECClustering, "_cluster", recording)
    dec = tiny(pretrain_epochs=3, max_epochs=5, n_init=4).fit(X)
    assert dec.selection_ == "agreement" and len(runs) == 4
    labels = [run["labels"].numpy() for run in runs]
    np.testing.assert_allclose(dec.restart_losses_, 1 - agreement(labels))
    np.testing.assert_array_equal(dec.labels_, labels[int(np.argmax(agreement(labels)))])
    with pytest.raises(ValueError, match="n_init \\* clustering_n_init >= 3"):
        tiny(n_init=2, selection="agreement").fit(X)
    with pytest.raises(ValueError, match="clustering_n_init=2"):
        tiny(clustering_n_init=2, selection="agreement").fit(X)


def test_clustering_phases_share_the_pretraining(blobs, monkeypatch):
    """clustering_n_init phases from one pretrained embedding: each from its own k-means draw, kept by agreement."""
    X, _ = blobs
    from skmic.dec import agreement

    starts, pretrainings = [], []
    original_cluster, original_pretrain = DECClustering._cluster, DECClustering._pretrain

    def recording_cluster(self, encoder, centers, *args, **kwargs):
        starts.append((encoder, {k: v.clone() for k, v in encoder.state_dict().items()}, centers.clone()))
        return original_cluster(self, encoder, centers, *args, **kwargs)

    def recording_pretrain(self, *args, **kwargs):
        pretrainings.append(1)
        return original_pretrain(self, *args, **kwargs)

    monkeypatch.setattr(DECClustering, "_cluster", recording_cluster)
    monkeypatch.setattr(DECClustering, "_pretrain", recording_pretrain)
    one = tiny(pretrain_epochs=3, max_epochs=5).fit(X)
    assert one.clustering_n_init_ == 1 and one.selection_ == "compactness"  # tabular data: the paper's one phase
    starts.clear(), pretrainings.clear()
    dec = tiny(pretrain_epochs=3, max_epochs=5, clustering_n_init=3).fit(X)
    assert len(pretrainings) == 1 and len(starts) == 3 and dec.selection_ == "agreement"
    # every phase starts from the same pretrained weights, in its own copy, from its own centroids
    for _, weights, _ in starts[1:]:
        for name, value in weights.items():
            torch.testing.assert_close(value, starts[0][1][name], rtol=0, atol=0)
    assert len({id(encoder) for encoder, _, _ in starts}) == 3
    assert not torch.equal(starts[0][2], starts[1][2]) and not torch.equal(starts[1][2], starts[2][2])
    # the first phase is the single phase's run; the kept phase agrees most with the others
    np.testing.assert_array_equal(dec.restart_labels_[0], one.labels_)
    assert dec.restart_labels_.shape == (3, len(X))
    np.testing.assert_allclose(dec.restart_losses_, 1 - agreement(dec.restart_labels_))
    np.testing.assert_array_equal(dec.labels_, dec.restart_labels_[dec.kept_restarts_[0]])
    np.testing.assert_array_equal(dec.predict(X), dec.labels_)
    # phases of several runs are pooled: n_init * clustering_n_init candidates
    runs = tiny(pretrain_epochs=3, max_epochs=5, n_init=2, clustering_n_init=2).fit(X)
    assert runs.restart_labels_.shape == (4, len(X)) and runs.selection_ == "agreement"


def test_balance_keeps_the_phase_of_most_even_sizes(blobs):
    X, _ = blobs
    # a start that is not yet the blobs: the phases end differently
    dec = tiny(pretrain_epochs=1, max_epochs=3, clustering_n_init=4, selection="balance", kmeans_n_init=1).fit(X)
    entropy = []
    for labels in dec.restart_labels_:  # naive entropy of the cluster sizes, in nats
        p = np.array([np.mean(labels == c) for c in range(3)])
        entropy.append(-sum(v * np.log(v) for v in p if v > 0))
    np.testing.assert_allclose(dec.restart_losses_, -np.array(entropy), rtol=1e-12)
    assert dec.kept_restarts_[0] == int(np.argmax(entropy))  # the first of equals
    np.testing.assert_array_equal(dec.labels_, dec.restart_labels_[dec.kept_restarts_[0]])


class _Recorder:
    """A perturbation that records the batches it sees and returns them unchanged (or shifted)."""

    def __init__(self, shift=0.0):
        self.shift, self.seen = shift, []

    def __call__(self, x, generator):
        self.seen.append(x.detach().clone())
        return x + self.shift


def test_augmentation_is_used_in_pretraining_and_clustering(blobs):
    X, _ = blobs
    identity = _Recorder()
    dec = tiny(perturbation=identity, rescale_input=True).fit(X)
    plain = tiny(rescale_input=True).fit(X)
    np.testing.assert_array_equal(dec.labels_, plain.labels_)  # DEC-DA with the identity is DEC
    np.testing.assert_allclose(dec.transform(X), plain.transform(X), rtol=1e-6)
    n_batches = -(-len(X) // 32)
    # one call checks the perturbation, then one per pretraining and clustering step
    clustering_steps = len(identity.seen) - 1 - 20 * n_batches
    assert (dec.n_iter_ - 1) * n_batches < clustering_steps <= dec.n_iter_ * n_batches
    # the perturbation sees the data in the user's units, not rescaled
    seen = torch.cat(identity.seen[1:])
    assert float(seen.abs().max()) == pytest.approx(np.abs(X).max(), rel=1e-5)
    shifted = tiny(perturbation=_Recorder(shift=3.0), rescale_input=True).fit(X)
    assert not np.allclose(shifted.transform(X), plain.transform(X))


def test_image_perturbations_need_a_matching_image_shape(digits):
    X, _ = digits
    with pytest.raises(ValueError, match="image_shape"):
        tiny(perturbation="elastic").fit(X[:60])
    with pytest.raises(ValueError, match="image_shape"):
        tiny(perturbation="elastic", image_shape=(7, 7)).fit(X[:60])
    dec = tiny(perturbation=["elastic", "affine"], image_shape=(8, 8), max_epochs=5).fit(X[:60])
    assert dec.image_shape_ == (1, 8, 8) and dec.labels_.shape == (60,)


def test_auto_defaults_follow_the_data():
    import numpy as np

    from skmic import DECClustering

    names = ("perturbation_", "rescale_input_", "pretrain_", "pretrain_epochs_", "kmeans_selection_",
             "kmeans_n_init_", "clustering_n_init_", "selection_")

    def resolved(est, X, image_shape):
        est.image_shape_ = image_shape
        est._resolve_defaults(X)
        return tuple(getattr(est, name) for name in names)

    est = DECClustering(10)
    assert resolved(est, np.zeros((1797, 64)), (1, 8, 8)) == (
        "shift-rotate", True, "greedy", 200, "balance", 100, 3, "balance")
    assert resolved(est, np.zeros((10000, 64)), None) == (
        None, False, "end_to_end", 40, "inertia", 20, 1, "compactness")
    paper = DECClustering(10, perturbation=None, rescale_input=False, pretrain="end_to_end", pretrain_epochs=7,
                          kmeans_selection="inertia", clustering_n_init=1)
    assert resolved(paper, np.zeros((1797, 64)), (1, 8, 8)) == (
        None, False, "end_to_end", 7, "inertia", 20, 1, "balance")  # one phase: nothing to choose
    # the number of k-means restarts follows the rule that picks one of them, given or "auto"
    balanced = DECClustering(10, kmeans_selection="balance")
    assert resolved(balanced, np.zeros((1797, 64)), None)[4:6] == ("balance", 100)
    assert resolved(DECClustering(10, kmeans_n_init=7), np.zeros((1797, 64)), (1, 8, 8))[4:6] == ("balance", 7)
    # the autoencoder's widths: a third of the paper's arithmetic for small images only
    def widths(est, n_features, image_shape):
        est.image_shape_ = image_shape
        est._resolve_defaults(np.zeros((10, n_features)))
        return est.hidden_layer_sizes_

    assert widths(DECClustering(10), 64, (1, 8, 8)) == widths(DECClustering(10), 256, (1, 16, 16)) == (256, 256, 1024)
    assert widths(DECClustering(10), 784, (1, 28, 28)) == widths(DECClustering(10), 64, None) == (500, 500, 2000)
    assert widths(DECClustering(10, hidden_layer_sizes=[7]), 64, (1, 8, 8)) == [7]
    # the selection counts every phase of every run, given or "auto"
    assert resolved(DECClustering(10, n_init=3), np.zeros((1797, 64)), None)[6:] == (1, "agreement")
    assert resolved(DECClustering(10, clustering_n_init=2), np.zeros((1797, 64)), None)[6:] == (2, "compactness")


def test_kmeans_selection_picks_the_initial_centroids():
    """With an identity encoder and a negligible learning rate DEC keeps its k-means labels: the rule shows."""
    rng = np.random.default_rng(0)
    points = [(0, 0)] * 40 + [(1, 0)] * 40 + [(0, 2)] * 10 + [(1, 2)] * 10
    X = (np.array(points) + 0.01 * rng.standard_normal((100, 2))).astype(np.float32)
    sizes = {}
    for rule in ("inertia", "balance"):
        dec = DECClustering(2, pretrained_encoder=torch.nn.Identity(), kmeans_selection=rule, kmeans_n_init=50,
                            learning_rate=1e-9, max_epochs=1, device="cpu", random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            dec.fit(X)
        sizes[rule] = sorted(np.bincount(dec.labels_))
    assert sizes == {"inertia": [20, 80], "balance": [50, 50]}


def test_autoencoder_dropout_zeroes_a_fraction_p_and_rescales_the_rest():
    from skmic.nn.autoencoder import Dropout

    torch.manual_seed(0)
    x = torch.full((400, 500), 3.0)
    drop = Dropout(0.2).train()
    out = drop(x)
    zero = out == 0
    assert abs(zero.float().mean().item() - 0.2) < 4 * (0.2 * 0.8 / x.numel()) ** 0.5
    torch.testing.assert_close(out[~zero], torch.full_like(out[~zero], 3.0 / 0.8))
    assert not torch.equal(drop(x), out)  # a fresh mask per call
    assert drop.eval()(x) is x and Dropout(0.0).train()(x) is x
    assert x.eq(3.0).all()  # the input is not modified
