"""One vocabulary across the estimators: the same name means the same thing everywhere."""

import inspect
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV

from numpydoc.docscrape import ClassDoc

from skmic import Checkpoint, DECClustering, DeepInfoMaxEmbedder, IICClustering, IICSegmentation, KMeansBaseline
from skmic.datasets import make_texture_mosaics
from skmic.exceptions import TrainingDivergedError

from test_common import tiny_estimators

#: estimator -> (the grid GridSearchCV searches, fitted attributes it must have besides
#: the ones every estimator has, COMMON_FITTED)
TABLE = {
    "KMeansBaseline": ({"n_clusters": [2, 3]},
                       ["labels_", "n_iter_", "history_", "cluster_centers_", "restart_losses_", "kept_restarts_"]),
    "IICClustering": ({"learning_rate": [1e-2, 1e-3]},
                      ["labels_", "n_iter_", "network_", "history_", "restart_losses_", "kept_restarts_"]),
    "DECClustering": ({"degrees_of_freedom": [1.0, 2.0]},
                      ["labels_", "n_iter_", "network_", "history_", "restart_losses_", "kept_restarts_"]),
    "DeepInfoMaxEmbedder": ({"learning_rate": [1e-2, 1e-3]}, ["n_iter_", "network_", "history_"]),
}

#: fitted attributes of every estimator
COMMON_FITTED = ["n_features_in_", "device_", "world_size_"]

#: parameters every estimator has, and those every network-training one adds
SHARED = {"device", "random_state", "verbose"}
DEEP = SHARED | {"batch_size", "max_epochs", "learning_rate", "warm_start", "callbacks"}

#: names that must not come back (one name per concept)
RETIRED = {"n_restarts", "alpha", "beta", "gamma", "max_iter_", "encoder_",
           "estimator"}  # scikit-learn's name for a sub-estimator object; DIM's is mi_estimator

#: parameters whose name says one thing: ``tol`` is a relative centre shift
#: (scikit-learn's KMeans), never a fraction of changed labels
TOL_MEANING = {"KMeansBaseline": "tol", "DECClustering": "label_change_tol"}


def by_name():
    return {type(e).__name__: e for e in tiny_estimators()}


@pytest.fixture
def X(blobs):
    return (blobs[0] - blobs[0].mean(0)) / blobs[0].std(0)


@pytest.mark.parametrize("name", TABLE)
def test_parameter_names(name):
    est = by_name()[name]
    params = set(est.get_params())
    assert (SHARED if name == "KMeansBaseline" else DEEP) <= params
    assert not params & RETIRED
    # n_init means full runs of the method everywhere (scikit-learn's meaning)
    if name != "DeepInfoMaxEmbedder":
        assert "n_init" in params
    # scikit-learn's default number of clusters
    if "n_clusters" in params:
        assert inspect.signature(type(est)).parameters["n_clusters"].default == 8


@pytest.mark.parametrize("name", TABLE)
def test_fitted_attributes_and_score(name, X):
    grid, attributes = TABLE[name]
    est = by_name()[name].fit(X)
    for attribute in COMMON_FITTED + attributes:
        assert hasattr(est, attribute), f"{name} has no {attribute}"
    assert est.world_size_ == 1  # an ordinary fit (tests/test_distributed.py: 2 processes)
    assert isinstance(est.n_iter_, int) and est.n_iter_ >= 1
    # one record per epoch (k-means: per Lloyd iteration, its pass over the data), numbered,
    # each with the epoch's loss as a number
    assert [r["epoch"] for r in est.history_] == list(range(1, est.n_iter_ + 1))
    assert all(isinstance(r["loss"], float) and np.isfinite(r["loss"]) for r in est.history_)
    score = est.score(X)
    assert isinstance(score, float) and np.isfinite(score)


@pytest.mark.parametrize("name", TABLE)
def test_grid_search_needs_no_scoring(name, X):
    grid, _ = TABLE[name]
    search = GridSearchCV(by_name()[name], grid, cv=2, error_score="raise").fit(X)
    assert search.best_params_.keys() == grid.keys()
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


@pytest.mark.parametrize("name", ["IICClustering", "DECClustering", "DeepInfoMaxEmbedder", "IICSegmentation"])
def test_divergence_is_one_error_type(name, X):
    calls = []

    def poisoned(x, generator):  # fine when fit checks it, NaN once training runs
        calls.append(1)
        return x * float("nan") if len(calls) > 1 else x

    est, perturbation = by_name().get(name), poisoned
    if name == "IICSegmentation":  # images; the poison after an affine map, pixel by pixel
        est, X = _quick_fits()[-1]
        perturbation = ["affine", poisoned]
    with pytest.raises(TrainingDivergedError):
        est.set_params(perturbation=perturbation).fit(X)


def test_segmentation_shares_the_vocabulary():
    # IICSegmentation labels pixels, not rows, so the table's row-based fits do not apply to it;
    # its parameter names and the default number of clusters are the shared ones
    from skmic import IICSegmentation

    params = set(IICSegmentation().get_params())
    assert DEEP | {"n_init", "n_clusters", "n_heads", "overclustering", "perturbation"} <= params
    assert not params & RETIRED
    assert inspect.signature(IICSegmentation).parameters["n_clusters"].default == 8


def test_segmentation_has_the_common_attributes_a_score_and_grid_search_needs_no_scoring():
    # the table's tests for the pixel-labelling estimator, on a few small images
    est, images = _quick_fits()[-1]
    est.fit(images)
    common = [a for a in COMMON_FITTED if a != "n_features_in_"]  # it takes images, not rows of features
    for attribute in common + ["labels_", "n_iter_", "network_", "history_", "restart_losses_", "kept_restarts_"]:
        assert hasattr(est, attribute), f"IICSegmentation has no {attribute}"
    assert [r["epoch"] for r in est.history_] == list(range(1, est.n_iter_ + 1))
    assert isinstance(est.score(images), float) and np.isfinite(est.score(images))
    search = GridSearchCV(est, {"learning_rate": [1e-2, 1e-3]}, cv=2, error_score="raise").fit(images)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


def test_tol_has_one_meaning():
    for name, param in TOL_MEANING.items():
        assert param in by_name()[name].get_params()
    assert "tol" not in DECClustering().get_params()


#: every public estimator, with input it fits in a second
def _quick_fits():
    X = np.random.default_rng(0).normal(size=(60, 4))
    images = make_texture_mosaics(4, size=16, n_classes=2, random_state=0)[0]
    seg = IICSegmentation(n_clusters=2, n_init=2, n_heads=1, max_epochs=1, conv_channels=(4,), n_pool=1,
                          refinement_rounds=1, batch_size=4, device="cpu", random_state=0)
    return [(e.set_params(**({"n_init": 2} if "n_init" in e.get_params() else {})), X) for e in tiny_estimators()] + [
        (seg, images)
    ]


def _verbose_fits():
    """(estimator, X, the phases whose progress bars ``verbose=1`` shows, in order) for every estimator."""
    quick = {type(est).__name__: (est, X) for est, X in _quick_fits()}
    X = quick["IICClustering"][1]
    # IIC with screening (60 rows in batches of 16: 4 steps an epoch, so 2 screening steps are 1 epoch)
    # and each way of predicting
    iic = dict(n_clusters=3, n_init=3, screen_steps=2, max_epochs=2, hidden_layer_sizes=(8,), overclustering=0,
               batch_size=16, device="cpu", random_state=0)
    screened = ["screening", "training", "inference"]  # the kept restarts train on; a pass over X
    dec_run = ["pretrain end-to-end", "k-means", "clustering"]
    return [
        (*quick["KMeansBaseline"], ["k-means"]),
        (IICClustering(selection="kmeans", **iic), X, screened + ["k-means", "inference"]),
        (IICClustering(selection="self_labeling", **iic), X, screened + ["k-means", "inference"]),
        (IICClustering(selection="consensus", **iic), X, screened + ["consensus k-means"]),
        (IICClustering(selection="lowest_loss", **iic), X, screened),
        (*quick["DECClustering"], dec_run * 2),  # n_init=2 runs, one after another
        (*quick["DeepInfoMaxEmbedder"], ["training"]),
        # the IIC network's segments, a refinement round, the refined segments
        (*quick["IICSegmentation"], ["training", "inference", "refinement", "inference"]),
    ]


@pytest.mark.parametrize("est, X, phases", _verbose_fits(),
                         ids=lambda v: type(v).__name__ if hasattr(v, "fit") else "")
def test_verbose_1_shows_a_bar_per_phase_and_0_is_silent(est, X, phases, capfd):
    name = type(est).__name__
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tiny fits: convergence warnings are expected
        est.set_params(verbose=0).fit(X)
        assert capfd.readouterr() == ("", "")
        est.set_params(verbose=1).fit(X)
    out, err = capfd.readouterr()
    assert out == "", "verbose=1 writes its progress to standard error"
    lines = [line.strip() for line in err.replace("\r", "\n").splitlines() if line.strip()]
    assert all(line.startswith(f"{name}: ") for line in lines), "every bar and line names the estimator"
    # every bar appears once when it starts (at 0%), labelled "<estimator>: <phase>"
    started = [re.match(rf"{name}: (.+?): +0%\|", line) for line in lines]
    assert [m.group(1) for m in started if m] == phases
    if isinstance(est, DECClustering):  # its runs train one after another: numbered
        assert f"{name}: run 2 of 2" in lines
    if isinstance(est, KMeansBaseline):  # the restarts run together: a line each once done, numbered
        restarts = [line.split(": inertia")[0] for line in lines if "restart" in line]
        assert restarts == [f"{name}: k-means restart {r} of 2" for r in (1, 2)]


PUBLIC = [KMeansBaseline, IICClustering, DECClustering, DeepInfoMaxEmbedder, IICSegmentation, Checkpoint]


@pytest.mark.parametrize("cls", PUBLIC, ids=lambda c: c.__name__)
def test_every_parameter_is_documented(cls):
    """The Parameters section names every parameter of ``__init__``, with its default and a description."""
    documented = {}
    for param in ClassDoc(cls)["Parameters"]:
        for name in param.name.split(","):
            documented[name.strip()] = param
    signature = inspect.signature(cls).parameters
    assert list(documented) == list(signature), "documented in the order of the signature, nothing else"
    for name, param in signature.items():
        doc = documented[name]
        assert " ".join(doc.desc).strip(), f"{cls.__name__}.{name} has no description"
        if param.default is not inspect.Parameter.empty:
            assert "default=" in doc.type, f"{cls.__name__}.{name}: the type line gives no default"
        # results belong to the user guide and the results page, not to a parameter's description:
        # no results file (benchmarks/results/<name>_cpu.md, .json), no benchmark script
        text = " ".join(doc.desc)
        cited = re.findall(r"benchmarks/|\b\w+_[cg]pu\w*\b|\w+\.(?:md|json|log)\b", text)
        assert not cited, f"{cls.__name__}.{name} cites results: {cited}"


def _lines(err, name):
    """The restart lines of ``name`` in captured standard error (the bars and k-means' own lines left out)."""
    lines = err.replace("\r", "\n").splitlines()
    return [line for line in lines if line.startswith(f"{name}: ") and "|" not in line and "k-means" not in line]


def test_verbose_numbers_the_restarts_of_each_phase(X, capfd):
    """Stacked restarts train together: a line per phase says which (numbered from 1), and which are kept."""
    from skmic._restarts import restart_numbers

    est = IICClustering(n_clusters=3, n_init=3, selection="consensus", screen_steps=2, max_epochs=3,
                        hidden_layer_sizes=(8,), overclustering=0, batch_size=32, device="cpu", random_state=0,
                        verbose=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X)  # 120 rows in batches of 32: 3 steps an epoch, so 2 screening steps are 1 epoch
        assert len(est.kept_restarts_) == 2  # the better half of 3
        kept = restart_numbers(est.kept_restarts_, 3)  # e.g. "restarts 1, 3 of 3"
        assert _lines(capfd.readouterr().err, "IICClustering") == [
            "IICClustering: restarts 1-3 of 3 train together for 1 epoch",
            f"IICClustering: kept {kept} (lowest sub-head losses)",
            f"IICClustering: {kept} train on for 2 epochs",
        ]
        est.set_params(warm_start=True, max_epochs=1).fit(X)  # the kept restarts, by their numbers
        assert _lines(capfd.readouterr().err, "IICClustering") == [f"IICClustering: {kept} train on for 1 epoch"]
        est.set_params(warm_start=False, n_init=1).fit(X)  # one restart: nothing to number
        assert _lines(capfd.readouterr().err, "IICClustering") == []

        images = make_texture_mosaics(4, size=16, n_classes=2, random_state=0)[0]
        seg = IICSegmentation(n_clusters=2, n_init=3, n_heads=1, max_epochs=2, head_reset=0.5, conv_channels=(4,),
                              n_pool=1, batch_size=4, device="cpu", random_state=0, verbose=1).fit(images)
    best = restart_numbers([np.argmin(seg.restart_losses_)], 3)
    assert _lines(capfd.readouterr().err, "IICSegmentation") == [
        "IICSegmentation: restarts 1-3 of 3 train together for 1 epoch",
        f"IICSegmentation: kept {best} (highest mutual information of the merged over-clusters)",
        f"IICSegmentation: {best} trains on for 1 epoch",
    ]


def _vocabulary_table():
    """Name -> meaning, from the table "One vocabulary" of the user guide's training page."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "user_guide" / "training.rst").read_text()
    lines = text.split("One vocabulary")[1].splitlines()
    borders = [i for i, line in enumerate(lines) if line.startswith("=====")]
    width = len(lines[borders[0]].split()[0])
    table, name = {}, None
    for line in lines[borders[1] + 1 : borders[2]]:
        if line[:width].strip():
            name = re.fullmatch(r"``(<?\w+>?_?)``", line[:width].strip()).group(1)
            table[name] = line[width:].strip()
        else:
            table[name] += " " + line.strip()
    return table


#: scikit-learn's own fitted attributes, not part of skmic's vocabulary
SKLEARN_ATTRIBUTES = {"n_features_in_", "feature_names_in_"}


def test_the_vocabulary_table_matches_the_code():
    """Every name of the user guide's table exists; every name two estimators share is in it."""
    table = _vocabulary_table()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = [est.fit(X) for est, X in _quick_fits()]
    params = {type(e).__name__: set(e.get_params()) for e in fitted}
    attributes = {type(e).__name__: {a for a in vars(e) if a.endswith("_") and not a.startswith("_")} for e in fitted}
    for name in table:
        if name != "<parameter>_":
            assert any(name in params[n] or name in attributes[n] or callable(getattr(e, name, None))
                       for n, e in zip(params, fitted)), f"the table names {name}, which no estimator has"
    for kind, names in (("parameter", params), ("fitted attribute", attributes)):
        seen = {}
        for estimator, own in names.items():
            for name in own - SKLEARN_ATTRIBUTES:
                if name.endswith("_") and name[:-1] in params[estimator]:
                    continue  # the value that ran of a parameter: the table's "<parameter>_"
                seen.setdefault(name, []).append(estimator)
        shared = {name: owners for name, owners in seen.items() if len(owners) > 1}
        missing = sorted(set(shared) - set(table))
        assert not missing, f"{kind}s shared by several estimators but not in the table: {missing}"
    assert "<parameter>_" in table and not set(table) & RETIRED
