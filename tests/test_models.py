"""The FDS models: their shapes, and hypergradients through them (train-mode BatchNorm included)."""

import pytest
import torch

from hpolab.hypergrad import classification_task, forward_mode, reverse_mode, schedule, train
from hpolab.models import lenet, wide_resnet


def images(n, channels, side, seed):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, channels, side, side, generator=generator, dtype=torch.float64)
    return x, torch.randint(0, 10, (n,), generator=generator)


@pytest.mark.parametrize("model, shape", [(lenet(1, 28), (5, 1, 28, 28)), (lenet(3, 32), (5, 3, 32, 32)),
                                          (wide_resnet(16, 1), (5, 3, 32, 32)), (wide_resnet(10, 2), (5, 3, 32, 32))],
                         ids=["lenet-mnist", "lenet-svhn", "wrn-16-1", "wrn-10-2"])
def test_models_map_a_batch_of_images_to_ten_logits(model, shape):
    assert model(torch.randn(shape)).shape == (5, 10)


def test_wrn_16_1_has_the_papers_size():
    """WRN-16-1: 2 blocks per group of widths 16, 32, 64, about 0.17 M weights."""
    weights = sum(p.numel() for p in wide_resnet(16, 1).parameters())
    assert 170_000 < weights < 180_000


def fds_setting(model, channels, side):
    torch.manual_seed(0)
    task = classification_task(model, images(16, channels, side, 0), images(8, channels, side, 1), batch_size=8,
                               dtype=torch.float64)
    return task, schedule(4, lr=torch.tensor([0.05, 0.02]), momentum=0.5, windows={"lr": 2}, learn=("lr", "momentum"))


def test_forward_mode_hypergradient_through_lenet_matches_finite_differences():
    task, hyper = fds_setting(lenet(1, 28), 1, 28)
    h, step = hyper.pack(), 1e-6

    def loss(point):
        return float(task.val_loss(train(task, hyper, 0, point).theta))

    fd = torch.tensor([(loss(h + step * e) - loss(h - step * e)) / (2 * step) for e in torch.eye(h.numel(), dtype=h.dtype)])
    grad = forward_mode()(task, hyper, 0).grad
    assert float((grad - fd).abs().max() / fd.abs().max()) < 1e-4


def test_forward_mode_hypergradient_through_wrn_with_batchnorm_equals_reverse_mode():
    """Finite differences are unreliable here (ReLU and BatchNorm kinks on 8-image batches move
    them by 0.5 % between steps 1e-6 and 1e-7); backpropagation through the run is exact."""
    task, hyper = fds_setting(wide_resnet(10, 1), 3, 32)
    forward, reverse = forward_mode()(task, hyper, 0).grad, reverse_mode()(task, hyper, 0).grad
    assert torch.allclose(forward, reverse, rtol=1e-8, atol=1e-12)


def test_bad_model_arguments_name_the_parameter():
    with pytest.raises(ValueError, match="depth must be 6 n"):
        wide_resnet(15)
    with pytest.raises(ValueError, match="image_size must be at least 16"):
        lenet(1, 8)


# ---------------------------------------------------------------------------------------------
# The HOZOG paper's CIFAR-10 networks (study 04)

from torch import nn  # noqa: E402

from hpolab.hypergrad import FlatModel, validation_losses  # noqa: E402
from hpolab.models import cifar_resnet152, cifar_vgg16, two_layer_cnn  # noqa: E402


def test_two_layer_cnn_has_the_papers_layers_convolution_max_pooling_and_normalization():
    model = two_layer_cnn()
    kinds = [type(layer) for layer in model]
    assert kinds.count(nn.Conv2d) == 2 and kinds.count(nn.MaxPool2d) == 2 and kinds.count(nn.LocalResponseNorm) == 2
    assert [layer.out_features for layer in model if isinstance(layer, nn.Linear)] == [384, 192, 10]
    assert model(torch.randn(3, 3, 32, 32)).shape == (3, 10)
    assert two_layer_cnn(width=8, image_size=28, in_channels=1)(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_two_layer_cnn_trains_the_same_batched_with_vmap_as_one_run_at_a_time():
    """HOZOG's q + 1 runs go through one vmap on a GPU: local response normalization must
    give there what it gives one run at a time."""
    torch.manual_seed(0)
    task = classification_task(two_layer_cnn(width=4, hidden=(16, 8)), images(16, 3, 32, 0),
                               images(8, 3, 32, 1), batch_size=8, dtype=torch.float64)
    hyper = schedule(4, lr=torch.tensor([0.05, 0.02]), windows={"lr": 2})
    points = torch.tensor([[0.05, 0.02], [0.1, 0.0], [0.0, 0.3]], dtype=torch.float64)
    batched = validation_losses(task, hyper, points, seed=3, batched=True).losses
    alone = validation_losses(task, hyper, points, seed=3, batched=False).losses
    assert torch.allclose(batched, alone, rtol=1e-10, atol=1e-12)
    assert len(set(batched.tolist())) == 3


def test_cifar_vgg16_takes_32_pixel_images_into_a_512_input_classifier_without_dropout():
    model = cifar_vgg16()
    assert model.classifier[0].in_features == 512
    assert not any(isinstance(layer, nn.Dropout) for layer in model.modules())
    assert sum(isinstance(layer, nn.Conv2d) for layer in model.modules()) == 13
    assert sum(isinstance(layer, nn.Linear) for layer in model.modules()) == 3
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("build", [cifar_vgg16, cifar_resnet152], ids=["vgg16", "resnet152"])
def test_torchvision_networks_map_stacked_weights_with_vmap_like_one_run_at_a_time(build):
    """HOZOG's q + 1 runs on a GPU are one vmap over stacked weights: each run must normalize
    with its own batch statistics (ResNet-152's BatchNorm under FlatModel). Two different
    initializations, forward only (training ResNet-152 here would take minutes), in float64:
    in float32 the two ways differ by rounding that 152 layers of BatchNorm on four images
    amplify to 0.3 %."""
    flat = FlatModel(build().double())
    thetas = torch.stack([flat.init(0, torch.float64), flat.init(1, torch.float64)])
    x = images(4, 3, 32, 0)[0]
    together = torch.func.vmap(flat, in_dims=(0, None))(thetas, x)
    alone = torch.stack([flat(theta, x) for theta in thetas])
    assert together.shape == (2, 4, 10)
    assert torch.allclose(together, alone, rtol=1e-10, atol=1e-12)  # float32 differs by 0.3 % through 152 layers
    assert not torch.allclose(alone[0], alone[1])


def test_batchnorm_network_trains_the_same_batched_with_vmap_as_one_run_at_a_time():
    """Training (not only the forward pass) through train-mode BatchNorm, batched and alone, in
    float64; a small network with the same BatchNorm handling as ResNet-152."""
    torch.manual_seed(0)
    task = classification_task(wide_resnet(10, 1), images(16, 3, 32, 0), images(8, 3, 32, 1), batch_size=8,
                               dtype=torch.float64)
    hyper = schedule(4, lr=torch.tensor([0.05, 0.02]), windows={"lr": 2})
    points = torch.tensor([[0.05, 0.02], [0.1, 0.0]], dtype=torch.float64)
    batched = validation_losses(task, hyper, points, seed=2, batched=True).losses
    alone = validation_losses(task, hyper, points, seed=2, batched=False).losses
    assert torch.allclose(batched, alone, rtol=1e-9, atol=1e-12)


def test_resnet152_has_its_depth_and_a_ten_way_head():
    model = cifar_resnet152()
    assert sum(isinstance(layer, nn.Conv2d) for layer in model.modules()) == 155  # 151 + 4 projections
    assert model.fc.out_features == 10


def test_bad_two_layer_cnn_arguments_name_the_parameter():
    with pytest.raises(ValueError, match="width must be an integer >= 1"):
        two_layer_cnn(width=0)
    with pytest.raises(ValueError, match="hidden must hold two"):
        two_layer_cnn(hidden=(10,))


def test_mlp_builds_the_layers_a_hand_written_sequential_would_with_the_same_initial_weights():
    from torch import nn

    from hpolab.models import mlp

    torch.manual_seed(0)
    by_hand = nn.Sequential(nn.Flatten(), nn.Linear(12, 7), nn.Tanh(), nn.Linear(7, 5), nn.Tanh(), nn.Linear(5, 3))
    torch.manual_seed(0)
    built = mlp((12, 7, 5, 3), activation=nn.Tanh, flatten=True)
    assert str(built) == str(by_hand)
    assert all(torch.equal(built.state_dict()[k], v) for k, v in by_hand.state_dict().items())


def test_flat_model_runs_a_plain_sequential_directly_with_functional_calls_numbers_and_gradients():
    """A Sequential of Linear, Flatten and activations skips functional_call (its parameter
    swapping costs a fifth of a small MLP's step) and must give the same numbers, bit for bit,
    as functional_call, gradients and vmap included; any other module takes functional_call."""
    from torch import nn
    from torch.func import functional_call, vmap

    from hpolab.models import mlp

    torch.manual_seed(0)
    module = nn.Sequential(nn.Flatten(), nn.Linear(12, 7), nn.Tanh(), nn.Linear(7, 5, bias=False), nn.ReLU(),
                           nn.Linear(5, 3), nn.Sigmoid())
    flat = FlatModel(module)
    assert flat.layers is not None
    theta = torch.randn(flat.size, requires_grad=True)
    x = torch.randn(4, 3, 4)
    direct = flat(theta, x)
    reference = functional_call(module, flat.unflatten(theta), (x,))
    assert torch.equal(direct, reference)
    (g1,) = torch.autograd.grad(direct.sum(), theta)
    (g2,) = torch.autograd.grad(reference.sum(), theta)
    assert torch.equal(g1, g2)
    thetas = torch.randn(3, flat.size)
    by_call = vmap(lambda t, x: functional_call(module, flat.unflatten(t), (x,)), in_dims=(0, None))
    assert torch.equal(vmap(flat, in_dims=(0, None))(thetas, x), by_call(thetas, x))
    assert FlatModel(nn.Sequential(nn.Linear(3, 3), nn.ReLU(inplace=True))).layers is None
    assert FlatModel(nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))).layers is None
    assert FlatModel(nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect"))).layers is None
    assert FlatModel(lenet()).layers is not None and FlatModel(mlp((5, 4, 2))).layers is not None


def test_flat_model_runs_convolutions_directly_and_their_double_backward_bit_for_bit():
    """LeNet-like Sequentials (Conv2d, MaxPool2d) run directly too. Where autograd records a
    graph, the first convolution, of the data, takes the route that skips torch's unused input
    gradient in the double backward: its forward, gradients and Hessian-vector products equal
    functional_call's bit for bit, in float32 and float64, and under vmap it is not used."""
    from torch import nn
    from torch.func import functional_call, vmap

    for dtype in (torch.float32, torch.float64):
        torch.manual_seed(0)
        module = nn.Sequential(nn.Conv2d(2, 3, 3, stride=2, padding=1), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
                               nn.Conv2d(3, 4, 2, bias=False), nn.Tanh(), nn.Flatten(), nn.Linear(16, 3)).to(dtype)
        flat = FlatModel(module)
        assert flat.layers is not None
        theta = torch.randn(flat.size, dtype=dtype, requires_grad=True)
        x, v = torch.randn(5, 2, 9, 9, dtype=dtype), torch.randn(flat.size, dtype=dtype)
        outputs = []
        for model in (flat, lambda t, x: functional_call(module, flat.unflatten(t), (x,))):
            out = model(theta, x)
            (grad,) = torch.autograd.grad(out.pow(2).sum(), theta, create_graph=True)
            (hvp,) = torch.autograd.grad(grad @ v, theta)
            outputs.append((out, grad, hvp))
        assert all(torch.equal(a, b) for a, b in zip(*outputs))
        nodes, seen = [flat(theta, x).grad_fn], set()
        while nodes:  # every node of the graph, breadth first
            node = nodes.pop(0)
            seen.add(type(node).__name__)
            nodes += [next_node for next_node, _ in node.next_functions if next_node is not None]
        assert "_DataConvBackward" in seen and "ConvolutionBackward0" in seen  # the data's and the second layer's
        thetas = torch.randn(3, flat.size, dtype=dtype)
        by_call = vmap(lambda t, x: functional_call(module, flat.unflatten(t), (x,)), in_dims=(0, None))
        assert torch.equal(vmap(flat, in_dims=(0, None))(thetas, x), by_call(thetas, x))


def test_logistic_regression_starts_at_zero_so_every_example_has_probability_one_half():
    from hpolab.models import logistic_regression

    model = logistic_regression(5)
    x = torch.randn(4, 5, dtype=torch.float64)
    assert model(x).shape == (4, 1) and model.weight.dtype == torch.float64
    assert torch.equal(torch.sigmoid(model(x)), torch.full((4, 1), 0.5, dtype=torch.float64))
