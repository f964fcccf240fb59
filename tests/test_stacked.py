"""Stacked restarts: R networks as one, each exactly a lone network."""

import copy

import numpy as np
import pytest
import torch

from skmic import IICClustering
from skmic._data import Rows
from skmic.nn.encoders import MLP, ConvEncoder
from skmic.nn.heads import IICNet
from skmic.nn.stacked import StackedLinear, stack_inputs, stack_state, unstack_state
from skmic.perturbations import make_perturbation


def lone_nets(build, n):
    nets = []
    for k in range(n):
        torch.manual_seed(k)
        nets.append(build(1))
    return nets


def stacked_from(build, nets):
    stacked = build(len(nets))
    stacked.load_state_dict(stack_state([m.state_dict() for m in nets]))
    return stacked


def test_stacked_linear_is_r_linear_layers():
    layers = [torch.nn.Linear(5, 3) for _ in range(4)]
    stacked = StackedLinear(5, 3, 4)
    stacked.load_state_dict(stack_state([m.state_dict() for m in layers]))
    x = torch.randn(4, 7, 5)
    out = stacked(stack_inputs(x)).view(7, 4, 3)
    for k, layer in enumerate(layers):
        torch.testing.assert_close(out[:, k], layer(x[k]))


@pytest.mark.parametrize(
    "build",
    [
        lambda r: IICNet(MLP(6, (8, 5), restarts=r), 3, 2, 7, restarts=r),
        lambda r: IICNet(ConvEncoder((2, 8, 8), (4, 6), restarts=r), 3, 2, 7, restarts=r),
    ],
    ids=["mlp", "conv"],
)
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_stacked_network_computes_each_restart_alone(build, mode):
    nets = lone_nets(build, 3)
    stacked = stacked_from(build, nets)
    for m in nets + [stacked]:
        m.train(mode == "train")
    n_features = 6 if isinstance(nets[0].trunk, MLP) else 128
    x = torch.randn(3, 10, n_features)
    h = stacked(stack_inputs(x))
    main, over = stacked.main(h), stacked.over(h)
    assert main.shape == (10, 3 * 2, 3) and over.shape == (10, 3 * 2, 7)
    for k, net in enumerate(nets):
        hk = net(x[k])
        torch.testing.assert_close(main[:, 2 * k : 2 * k + 2], net.main(hk), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(over[:, 2 * k : 2 * k + 2], net.over(hk), atol=1e-5, rtol=1e-4)
    if mode == "train":  # BatchNorm statistics were updated per restart too
        state = stacked.state_dict()
        for k, net in enumerate(nets):
            for name, t in unstack_state(state, 3, k).items():
                torch.testing.assert_close(t, net.state_dict()[name], atol=1e-5, rtol=1e-4)


def test_unstack_state_inverts_stack_state():
    nets = lone_nets(lambda r: MLP(4, (3,), 2, restarts=r), 3)
    state = stack_state([m.state_dict() for m in nets])
    for k, net in enumerate(nets):
        for name, t in unstack_state(state, 3, k).items():
            assert torch.equal(t, net.state_dict()[name])


def test_unstack_state_of_several_restarts_is_their_stack():
    nets = lone_nets(lambda r: MLP(4, (3,), 2, restarts=r), 4)
    state = stack_state([m.state_dict() for m in nets])
    picked = unstack_state(state, 4, [3, 1])
    expected = stack_state([nets[3].state_dict(), nets[1].state_dict()])
    assert picked.keys() == expected.keys()
    for name, t in expected.items():
        assert torch.equal(picked[name], t)


def _restart_weights(run, k):
    return {n: t for n, t in run.select(k).net.state_dict().items() if t.is_floating_point()}


@pytest.mark.parametrize("image", [False, True], ids=["mlp", "conv"])
def test_restart_k_of_a_batched_fit_is_the_lone_fit_with_its_seed(digits, image):
    X = digits[0][:150].astype(np.float32)
    est = IICClustering(
        n_clusters=4, n_heads=2, image_shape=(8, 8) if image else None, conv_channels=(4, 8),
        hidden_layer_sizes=(16,), batch_size=16, n_repeats=2, random_state=0, device="cpu",
    )
    est.image_shape_, est.device_ = (1, 8, 8) if image else None, torch.device("cpu")
    est._resolve_defaults(X)
    Xt = torch.tensor(X, dtype=torch.float64)
    g = make_perturbation(est.perturbation_, est.image_shape_, data=Rows(Xt, "cpu", torch.float64))
    seeds = [11, 22, 33]
    # float64 throughout, so that the summation orders of grouped and lone
    # kernels differ by 1e-16, not by the 1e-7 that Adam amplifies in float32
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        with torch.random.fork_rng():
            batched = est._train_restarts(Rows(Xt, "cpu", torch.float64), g, seeds, 3)
            losses = batched.head_losses()
            for k, seed in enumerate(seeds):
                lone = est._train_restarts(Rows(Xt, "cpu", torch.float64), g, [seed], 3)
                torch.testing.assert_close(losses[k], lone.head_losses()[0], atol=1e-9, rtol=1e-9)
                ours, theirs = _restart_weights(batched, k), _restart_weights(lone, 0)
                for name in theirs:
                    torch.testing.assert_close(ours[name], theirs[name], atol=1e-8, rtol=1e-8)
                np.testing.assert_allclose(
                    [r["loss"] for r in batched.select(k).history], [r["loss"] for r in lone.select(0).history], rtol=1e-9
                )
                with torch.no_grad():  # the same network: the same labels
                    a, b = batched.select(k).net, lone.select(0).net
                    assert torch.equal(a.main(a(Xt)).argmax(-1), b.main(b(Xt)).argmax(-1))
    finally:
        torch.set_default_dtype(default)


def test_restart_zero_is_the_fit_with_one_restart(blobs):
    X, _ = blobs
    kwargs = dict(n_clusters=3, n_heads=2, max_epochs=4, hidden_layer_sizes=(16,), random_state=3, device="cpu")
    one = IICClustering(n_init=1, **kwargs).fit(X)
    three = IICClustering(n_init=3, **kwargs).fit(X)
    assert three.restart_losses_.shape == (3,)
    assert three.restart_losses_[0] == pytest.approx(one.restart_losses_[0], abs=1e-4)
    assert three.restart_losses_.min() <= one.restart_losses_[0] + 1e-4


def test_a_selected_restart_trains_on_as_if_it_had_been_alone(blobs):
    # screening: restart k taken out of the stack after 2 epochs, with its optimizer
    # state, then trained 3 more, is the lone training of its seed for 5 epochs
    X = torch.tensor(blobs[0], dtype=torch.float64)
    est = IICClustering(n_clusters=3, n_heads=2, hidden_layer_sizes=(16,), device="cpu")
    est.image_shape_, est.device_ = None, torch.device("cpu")
    est._resolve_defaults(X)
    g = make_perturbation("tabular")
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        with torch.random.fork_rng():
            screened = est._train_restarts(Rows(X, "cpu", torch.float64), g, [5, 6, 7], 2).select(1)
            screened.train(3)
            alone = est._train_restarts(Rows(X, "cpu", torch.float64), g, [6], 5).select(0)
    finally:
        torch.set_default_dtype(default)
    assert [r["epoch"] for r in screened.history] == [1, 2, 3, 4, 5]
    np.testing.assert_allclose([r["loss"] for r in screened.history], [r["loss"] for r in alone.history], rtol=1e-9)
    # several restarts taken out together keep their order, weights and histories
    pair = est._train_restarts(Rows(X, "cpu"), g, [5, 6, 7], 2)
    both = pair.select([2, 0])
    assert both.net.restarts == 2 and [r["loss"] for r in both.history] == [[r["loss"][2], r["loss"][0]] for r in pair.history]
    for name, t in both.net.state_dict().items():
        if t.is_floating_point():
            torch.testing.assert_close(t, torch.cat([pair.select(2).net.state_dict()[name], pair.select(0).net.state_dict()[name]]))
    for name, t in alone.net.state_dict().items():
        torch.testing.assert_close(screened.net.state_dict()[name], t, atol=1e-8, rtol=1e-8)


def test_conv_block_pools_before_relu_and_equals_the_usual_order_bit_for_bit():
    from skmic.nn.encoders import conv_block

    torch.manual_seed(0)
    block = torch.nn.Sequential(*conv_block(torch.nn.Conv2d(3, 8, 3, padding=1), pool=True))
    assert [type(m).__name__ for m in block] == ["Conv2d", "BatchNorm2d", "MaxPool2d", "ReLU"]
    usual = copy.deepcopy(block)
    usual[2], usual[3] = usual[3], usual[2]  # conv -> BN -> ReLU -> pool
    x = torch.randn(4, 3, 8, 8)
    outputs = []
    for net in (block, usual):
        xi = x.clone().requires_grad_()
        y = net(xi)
        y.backward(torch.randn(y.shape, generator=torch.Generator().manual_seed(1)))
        outputs.append((y.detach(), xi.grad, net[0].weight.grad))
    assert (outputs[0][0] == 0).any() and (outputs[0][0] > 0).any()  # the ReLU cuts and passes
    for a, b in zip(*outputs):
        assert torch.equal(a, b)


def test_conv_encoder_output_is_the_flat_map_and_its_gradient_comes_back_channels_last():
    torch.manual_seed(0)
    enc = ConvEncoder((1, 8, 8), (4, 8, 16))
    x = torch.rand(6, 64)
    maps = enc.feature_map(x).detach().requires_grad_()
    plain = maps.detach().clone().requires_grad_()
    from skmic.nn.encoders import _FlatMaps

    out = _FlatMaps.apply(maps)
    grad = torch.randn(out.shape)
    out.backward(grad)
    plain.flatten(1).backward(grad)
    assert torch.equal(out, plain.flatten(1)) and torch.equal(enc(x), out)
    assert torch.equal(maps.grad, plain.grad) and maps.grad.is_contiguous(memory_format=torch.channels_last)
