"""SGD-HD, SGDN-HD and Adam-HD: torch's optimizers when beta = 0, the right hypergradient otherwise."""

import copy
import math

import pytest
import torch
from torch.nn import functional as F

from hpolab.optim import SGDHD, AdamHD

torch.manual_seed(0)
MODEL = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 2)).double()
X = torch.randn(32, 5, dtype=torch.float64)
Y = torch.randint(0, 2, (32,))

PAIRS = [
    pytest.param(lambda ps: SGDHD(ps, lr=0.1, hypergrad_lr=0, weight_decay=1e-4),
                 lambda ps: torch.optim.SGD(ps, lr=0.1, weight_decay=1e-4, foreach=False), id="sgd"),
    pytest.param(lambda ps: SGDHD(ps, lr=0.1, hypergrad_lr=0, momentum=0.9, weight_decay=1e-4),
                 lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-4, foreach=False), id="sgd-momentum"),
    pytest.param(lambda ps: SGDHD(ps, lr=0.1, hypergrad_lr=0, momentum=0.9, nesterov=True, weight_decay=1e-4),
                 lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4, foreach=False),
                 id="sgdn"),
    pytest.param(lambda ps: AdamHD(ps, lr=0.01, hypergrad_lr=0, weight_decay=1e-4),
                 lambda ps: torch.optim.Adam(ps, lr=0.01, weight_decay=1e-4, foreach=False), id="adam"),
]

HD = [
    pytest.param(lambda ps: SGDHD(ps, lr=0.05, hypergrad_lr=1e-3), id="sgd-hd"),
    pytest.param(lambda ps: SGDHD(ps, lr=0.05, hypergrad_lr=1e-3, momentum=0.9, nesterov=True), id="sgdn-hd"),
    pytest.param(lambda ps: AdamHD(ps, lr=0.01, hypergrad_lr=1e-4), id="adam-hd"),
]


def loss_of(model):
    return F.cross_entropy(model(X), Y)


def train(make, steps=6, model=MODEL):
    model = copy.deepcopy(model)
    optimizer = make(model.parameters())
    for _ in range(steps):
        optimizer.zero_grad()
        loss_of(model).backward()
        optimizer.step()
    return model, optimizer


@pytest.mark.parametrize("ours, theirs", PAIRS)
def test_zero_hypergradient_rate_is_exactly_torch_optimizer(ours, theirs):
    mine, _ = train(ours)
    reference, _ = train(theirs)
    for a, b in zip(mine.parameters(), reference.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("make", HD)
def test_learning_rate_moves_by_minus_beta_times_finite_difference_of_one_step_loss(make):
    """After a step u, d/dalpha L(theta - alpha u) at the used alpha, by central differences,
    is the hypergradient the next step follows: alpha_next = alpha - beta * that."""
    model, optimizer = train(make, steps=3)
    group = optimizer.param_groups[0]
    params = list(model.parameters())
    alpha = group["lr"]
    directions = [optimizer.state[p]["direction"] for p in params]
    before = [p.detach().clone() for p in params]
    start = [b + alpha * u for b, u in zip(before, directions)]  # the weights before the last step

    def one_step_loss(rate):
        with torch.no_grad():
            for p, s, u in zip(params, start, directions):
                p.copy_(s - rate * u)
            return float(loss_of(model))

    eps = 1e-6
    derivative = (one_step_loss(alpha + eps) - one_step_loss(alpha - eps)) / (2 * eps)
    with torch.no_grad():
        for p, b in zip(params, before):
            p.copy_(b)
    optimizer.zero_grad()
    loss_of(model).backward()
    optimizer.step()
    assert group["lr"] == pytest.approx(alpha - group["hypergrad_lr"] * derivative, rel=1e-9, abs=1e-12)


def test_each_parameter_group_learns_its_own_rate_and_keeps_its_trajectory():
    model = copy.deepcopy(MODEL)
    optimizer = SGDHD([{"params": model[0].parameters()}, {"params": model[2].parameters(), "hypergrad_lr": 0.0}],
                      lr=0.05, hypergrad_lr=1e-2)
    for _ in range(5):
        optimizer.zero_grad()
        loss_of(model).backward()
        optimizer.step()
    first, second = optimizer.lr_history
    assert len(first) == len(second) == 6
    assert len(set(first)) > 1 and set(second) == {0.05}
    assert optimizer.param_groups[0]["lr"] == first[-1]


def test_learned_rate_never_goes_negative():
    """On 10 w^2 a rate of 0.15 overshoots: consecutive gradients point opposite ways and a
    large beta would drive the rate below zero; the guard holds it at 0."""
    weight = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    optimizer = SGDHD([weight], lr=0.15, hypergrad_lr=1.0)
    for _ in range(3):
        optimizer.zero_grad()
        (10 * weight**2).sum().backward()
        optimizer.step()
    assert optimizer.lr_history[0][:2] == [0.15, 0.15]
    assert optimizer.lr_history[0][2] == 0.0  # 0.15 + 1.0 * (-20 * 20) < 0, clamped


@pytest.mark.parametrize("build, message", [
    (lambda ps: SGDHD(ps, lr=-0.1), "lr must be >= 0"),
    (lambda ps: SGDHD(ps, hypergrad_lr=-1e-3), r"hypergrad_lr \(beta\) must be >= 0"),
    (lambda ps: SGDHD(ps, momentum=1.0), r"momentum must be in \[0, 1\)"),
    (lambda ps: SGDHD(ps, nesterov=True), "nesterov needs momentum"),
    (lambda ps: AdamHD(ps, betas=(0.9, 1.0)), r"betas\[1\] must be in \[0, 1\)"),
    (lambda ps: AdamHD(ps, betas=(-0.1, 0.999)), r"betas\[0\] must be in \[0, 1\)"),
    (lambda ps: AdamHD(ps, hypergrad_lr=-1.0), r"hypergrad_lr \(beta\) must be >= 0"),
    (lambda ps: AdamHD(ps, eps=0.0), "eps must be a finite number > 0"),
])
def test_bad_arguments_raise_value_error(build, message):
    with pytest.raises(ValueError, match=message):
        build(copy.deepcopy(MODEL).parameters())


@pytest.mark.parametrize("rule, make", [
    ("sgd", lambda ps: SGDHD(ps, lr=0.05, hypergrad_lr=1e-3)),
    ("sgdn", lambda ps: SGDHD(ps, lr=0.05, hypergrad_lr=1e-3, momentum=0.9, nesterov=True)),
    ("adam", lambda ps: AdamHD(ps, lr=0.01, hypergrad_lr=1e-4)),
])
def test_functional_form_on_core_protocol_follows_the_torch_optimizer(rule, make):
    """Run on one flat weight vector, the Method and the optimizer learn the same rates."""
    from hpolab import run
    from hpolab.methods.online_hypergradient import learning_rate_problem, online_hypergradient

    flat0 = torch.cat([p.detach().reshape(-1) for p in MODEL.parameters()])
    shapes = [p.shape for p in MODEL.parameters()]

    def loss(flat):
        parts = dict(zip([n for n, _ in MODEL.named_parameters()],
                         [t.view(s) for t, s in zip(torch.split(flat, [s.numel() for s in shapes]), shapes)]))
        return F.cross_entropy(torch.func.functional_call(MODEL, parts, (X,)), Y)

    lr0 = make([torch.nn.Parameter(torch.zeros(1))]).param_groups[0]["lr"]
    beta = make([torch.nn.Parameter(torch.zeros(1))]).param_groups[0]["hypergrad_lr"]
    problem = learning_rate_problem("mlp", loss, lambda g: flat0.clone(), lr0)
    history = run(online_hypergradient(rule, hypergrad_lr=beta), problem, iterations=6, seed=0)

    weights = torch.nn.Parameter(flat0.clone())
    optimizer = make([weights])
    for _ in range(6):
        optimizer.zero_grad()
        loss(weights).backward()
        optimizer.step()
    assert history.frame["lr"].tolist() == pytest.approx(optimizer.lr_history[0], rel=1e-9)


def reference_hd(rule, flat0, loss, lr, beta, steps, momentum=0.9, weight_decay=1e-4, betas=(0.9, 0.999), eps=1e-8):
    """Baydin et al.'s reference loop (github.com/gbaydin/hypergradient-descent, sgd_hd.py and
    adam_hd.py) on one flat tensor: h = g_t . u_{t-1}, alpha += beta h, unclamped."""
    x, previous, buffer, m, v, rates = flat0.clone(), torch.zeros_like(flat0), None, 0 * flat0, 0 * flat0, [lr]
    for t in range(1, steps + 1):
        xg = x.clone().requires_grad_(True)
        g = torch.autograd.grad(loss(xg), xg)[0] + weight_decay * x
        if rule == "adam":
            if t > 1:
                lr += beta * float(g @ (m / (v.sqrt() + eps))) * math.sqrt(1 - betas[1] ** (t - 1)) / (1 - betas[0] ** (t - 1))
            m = betas[0] * m + (1 - betas[0]) * g
            v = betas[1] * v + (1 - betas[1]) * g * g
            x = x - lr * math.sqrt(1 - betas[1] ** t) / (1 - betas[0] ** t) * m / (v.sqrt() + eps)
        else:
            lr += beta * float(g @ previous)
            if rule == "sgdn":
                buffer = g.clone() if buffer is None else momentum * buffer + g
                g = g + momentum * buffer
            previous = g
            x = x - lr * g
        rates.append(lr)
    return rates


@pytest.mark.parametrize("rule, make, lr, beta", [
    ("sgd", lambda ps, lr, b: SGDHD(ps, lr=lr, hypergrad_lr=b, weight_decay=1e-4, nonnegative=False), 0.05, 1e-4),
    ("sgdn", lambda ps, lr, b: SGDHD(ps, lr=lr, hypergrad_lr=b, momentum=0.9, nesterov=True, weight_decay=1e-4,
                                     nonnegative=False), 0.02, 1e-4),
    ("adam", lambda ps, lr, b: AdamHD(ps, lr=lr, hypergrad_lr=b, weight_decay=1e-4, nonnegative=False), 0.5, 0.02),
])
def test_printed_rule_follows_the_reference_code_and_lets_the_rate_go_negative(rule, make, lr, beta):
    """With nonnegative=False the learned rates are the reference implementation's, step for step,
    through a stretch where the rule drives the rate below 0 (a large beta on an ill-conditioned
    quadratic); the clamped default would hold it at 0 there."""
    scales = torch.linspace(1.0, 30.0, 12, dtype=torch.float64)

    def loss(x):
        return 0.5 * (scales * x * x).sum()

    flat0 = torch.linspace(-1.0, 1.0, 12, dtype=torch.float64)
    expected = reference_hd(rule, flat0, loss, lr, beta, steps=8)
    weights = torch.nn.Parameter(flat0.clone())
    optimizer = make([weights], lr, beta)
    for _ in range(8):
        optimizer.zero_grad()
        loss(weights).backward()
        optimizer.step()
    assert min(expected) < 0
    # Adam-HD: the reference adds eps to sqrt(v) before bias correction, torch after (module docstring)
    assert optimizer.lr_history[0] == pytest.approx(expected, rel=1e-5 if rule == "adam" else 1e-9, abs=1e-12)
