"""The shared training loop."""

import pytest
import torch

from skmic._training import TrainingDivergedError, batches, train


def test_batches_cover_every_index_once_and_never_one():
    g = torch.Generator().manual_seed(0)
    for n, bs in [(10, 3), (9, 4), (2, 5), (101, 10), (5, 1)]:
        parts = batches(n, bs, generator=g)
        joined = torch.cat(parts).sort().values
        assert torch.equal(joined, torch.arange(n))
        if n > 1 and bs > 1:
            assert min(len(p) for p in parts) >= 2


def test_batches_are_reproducible():
    a = batches(20, 6, generator=torch.Generator().manual_seed(3))
    b = batches(20, 6, generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def _regression_problem():
    torch.manual_seed(0)
    X = torch.randn(64, 3)
    y = X @ torch.tensor([1.0, -2.0, 0.5])
    model = torch.nn.Linear(3, 1)
    return X, y, model


def test_train_decreases_loss_and_records_history():
    X, y, model = _regression_problem()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    calls = []

    def step(idx, phase):
        calls.append(phase)
        return ((model(X[idx]).squeeze(1) - y[idx]) ** 2).mean()

    result = train(step, n_samples=64, optimizer=opt, max_epochs=20, batch_size=16, device="cpu", modules=[model], phases=("a", "b"))
    assert result.n_epochs == 20 and result.n_steps == 20 * 2 * 4
    assert [r["epoch"] for r in result.history] == list(range(1, 21))
    assert result.history[-1]["loss"] < 0.01 * result.history[0]["loss"]
    assert {"loss_a", "loss_b"} <= set(result.history[0])
    assert calls[:4] == ["a"] * 4 and calls[4:8] == ["b"] * 4
    assert not model.training  # back in eval mode


def test_hooks_stop_training():
    X, y, model = _regression_problem()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def step(idx, phase):
        return ((model(X[idx]).squeeze(1) - y[idx]) ** 2).mean()

    r = train(step, n_samples=64, optimizer=opt, max_epochs=50, batch_size=16, device="cpu", before_step=lambda i: i >= 10)
    assert r.n_steps == 10 and r.stopped_early
    r = train(step, n_samples=64, optimizer=opt, max_epochs=50, batch_size=16, device="cpu", on_epoch_end=lambda rec: rec["epoch"] == 3)
    assert r.n_epochs == 3 and r.stopped_early
    r = train(step, n_samples=64, optimizer=opt, max_epochs=500, batch_size=16, device="cpu", tol=1e-3, n_iter_no_change=3)
    assert r.stopped_early and r.n_epochs < 500


def test_divergence_is_a_clear_error():
    w = torch.nn.Parameter(torch.ones(1))
    opt = torch.optim.SGD([w], lr=0.1)
    with pytest.raises(TrainingDivergedError, match="learning_rate"):
        train(lambda idx, ph: w.sum() * float("nan"), n_samples=8, optimizer=opt, max_epochs=2, batch_size=4, device="cpu")


def test_verbose_prints_progress(capsys):
    w = torch.nn.Parameter(torch.ones(1))
    opt = torch.optim.SGD([w], lr=0.1)
    train(lambda idx, ph: (w**2).sum(), n_samples=8, optimizer=opt, max_epochs=2, batch_size=4, device="cpu", verbose=2,
          desc="toy", owner="Estimator")
    err = capsys.readouterr().err
    assert "Estimator: toy:   0%|" in err  # the bar, named "<owner>: <desc>"
    assert "Estimator: toy: epoch 2/2" in err
    train(lambda idx, ph: (w**2).sum(), n_samples=8, optimizer=opt, max_epochs=2, batch_size=4, device="cpu", verbose=0)
    assert capsys.readouterr().err == ""


def test_progress_bars_do_not_flood_a_file_or_pipe(capsys):
    import io
    import time

    from skmic._training import _progress_interval

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    assert _progress_interval(Terminal()) == 0.1 and _progress_interval(io.StringIO()) == 30.0
    w = torch.nn.Parameter(torch.ones(1))
    opt = torch.optim.SGD([w], lr=0.1)

    def slow_step(idx, phase):
        time.sleep(0.004)
        return (w**2).sum()

    # ~1.2 s of training: tqdm's 0.1 s refresh would write a dozen bars into captured stderr
    train(slow_step, n_samples=8, optimizer=opt, max_epochs=150, batch_size=4, device="cpu", verbose=1, desc="toy")
    assert capsys.readouterr().err.count("toy") <= 2


def test_adam_matches_torchs_default_adam():
    from skmic._training import adam

    torch.manual_seed(0)
    a = [torch.nn.Parameter(torch.randn(50)) for _ in range(2)]
    b = [torch.nn.Parameter(p.detach().clone()) for p in a]
    opt_a, opt_b = adam(a, 1e-2), torch.optim.Adam(b, lr=1e-2)
    for _ in range(20):
        grad = torch.randn(50)
        for opt, params in ((opt_a, a), (opt_b, b)):
            opt.zero_grad()
            sum((p * grad).sum() + (p**2).sum() for p in params).backward()
            opt.step()
    for p, q in zip(a, b):
        torch.testing.assert_close(p, q, atol=1e-5, rtol=1e-5)
