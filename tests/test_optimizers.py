"""Optimizers: a generic check over the whole registry, then each update rule against a hand computation."""

import copy
import math

import pytest
import torch

import heavytail.optim.registry as registry
from heavytail import RunSpec, run
from heavytail.optim import make_optimizer, optimizer_names, register_optimizer, resolve_optimizer
from heavytail.options import ConfigError
from heavytail.train import train


def _quadratic_params():
    """Two parameter tensors of different shapes (plus one that gets no gradient), float64."""
    weight = torch.nn.Parameter(torch.tensor([[1.0, -2.0, 0.5], [-0.75, 1.5, -1.0]], dtype=torch.float64))
    bias = torch.nn.Parameter(torch.tensor([2.0, -0.5], dtype=torch.float64))
    frozen = torch.nn.Parameter(torch.tensor([3.0, 4.0], dtype=torch.float64))
    return weight, bias, frozen


def _quadratic(weight, bias):
    """f = 1/2 sum a w^2 + 1/2 sum c b^2 with distinct curvatures a, c; minimum 0 at the origin."""
    a = torch.tensor([[1.0, 2.0, 3.0], [0.5, 1.0, 4.0]], dtype=torch.float64)
    c = torch.tensor([2.0, 0.25], dtype=torch.float64)
    return 0.5 * (a * weight**2).sum() + 0.5 * (c * bias**2).sum()


def check_generic_optimizer(name, lr=1e-3):
    """One small step decreases a quadratic; parameters without a gradient are untouched and stateless."""
    weight, bias, frozen = _quadratic_params()
    optimizer = make_optimizer(name, [weight, bias, frozen], lr)
    frozen_before = frozen.detach().clone()
    for _ in range(3):
        before = _quadratic(weight, bias).item()
        optimizer.zero_grad(set_to_none=True)
        _quadratic(weight, bias).backward()
        optimizer.step()
        assert _quadratic(weight, bias).item() < before
    assert torch.equal(frozen, frozen_before)
    assert frozen not in optimizer.state
    # state is per parameter: keyed by the parameter, any tensor of several entries has its shape
    for param, state in optimizer.state.items():
        assert param is weight or param is bias
        for value in state.values():
            if torch.is_tensor(value) and value.numel() > 1:
                assert value.shape == param.shape
    tensors = [v for state in optimizer.state.values() for v in state.values() if torch.is_tensor(v) and v.numel() > 1]
    assert len({v.data_ptr() for v in tensors}) == len(tensors)  # no buffer shared between parameters


def check_zero_gradient_is_a_fixed_point(name):
    weight, bias, _ = _quadratic_params()
    before = [weight.detach().clone(), bias.detach().clone()]
    optimizer = make_optimizer(name, [weight, bias], 0.1)
    for p in (weight, bias):
        p.grad = torch.zeros_like(p)
    optimizer.step()
    assert torch.equal(weight, before[0]) and torch.equal(bias, before[1])


def check_state_dict_resumes_the_trajectory(name):
    """Saving and loading the optimizer state mid-run continues exactly as an uninterrupted run."""

    def steps(optimizer, weight, bias, count):
        for _ in range(count):
            optimizer.zero_grad(set_to_none=True)
            _quadratic(weight, bias).backward()
            optimizer.step()

    weight, bias, _ = _quadratic_params()
    optimizer = make_optimizer(name, [weight, bias], 1e-2)
    steps(optimizer, weight, bias, 4)
    reference = [weight.detach().clone(), bias.detach().clone()]

    weight2, bias2, _ = _quadratic_params()
    first = make_optimizer(name, [weight2, bias2], 1e-2)
    steps(first, weight2, bias2, 2)
    state = copy.deepcopy(first.state_dict())
    second = make_optimizer(name, [weight2, bias2], 1e-2)
    second.load_state_dict(state)
    steps(second, weight2, bias2, 2)
    torch.testing.assert_close(weight2.detach(), reference[0], rtol=0, atol=0)
    torch.testing.assert_close(bias2.detach(), reference[1], rtol=0, atol=0)


@pytest.mark.parametrize("name", optimizer_names())
def test_every_registered_optimizer_decreases_a_quadratic(name):
    check_generic_optimizer(name)


@pytest.mark.parametrize("name", optimizer_names())
def test_every_registered_optimizer_stays_at_a_zero_gradient(name):
    check_zero_gradient_is_a_fixed_point(name)


@pytest.mark.parametrize("name", optimizer_names())
def test_every_registered_optimizer_resumes_from_its_state_dict(name):
    check_state_dict_resumes_the_trajectory(name)


# ---- hand computations on tiny tensors -------------------------------------------------------------

X0 = [1.0, -2.0, 0.5]
GRADS = [[0.5, -1.0, 2.0], [1.0, 1.0, -1.0], [-3.0, 0.25, 0.0]]


def _trajectory(name, lr, grads, x0=X0, options=None):
    """Parameters after each step when the gradients are ``grads`` (set by hand, no model)."""
    x = torch.nn.Parameter(torch.tensor(x0, dtype=torch.float64))
    optimizer = make_optimizer(name, [x], lr, options)
    out = []
    for g in grads:
        x.grad = torch.tensor(g, dtype=torch.float64)
        optimizer.step()
        out.append(x.detach().clone().tolist())
    return out


def _close(actual, expected, tol=1e-12):
    assert len(actual) == len(expected)
    for a_row, e_row in zip(actual, expected):
        assert a_row == pytest.approx(e_row, rel=tol, abs=tol)


def test_gd_hand_computation():
    lr = 0.1
    x1 = [1.0 - 0.05, -2.0 + 0.1, 0.5 - 0.2]
    x2 = [x1[0] - 0.1, x1[1] - 0.1, x1[2] + 0.1]
    x3 = [x2[0] + 0.3, x2[1] - 0.025, x2[2]]
    _close(_trajectory("gd", lr, GRADS), [x1, x2, x3])


def test_gd_momentum_is_heavy_ball_without_dampening():
    lr, beta = 0.1, 0.9
    b1 = GRADS[0]  # b_1 = u_1
    b2 = [beta * b + g for b, g in zip(b1, GRADS[1])]
    b3 = [beta * b + g for b, g in zip(b2, GRADS[2])]
    x1 = [x - lr * b for x, b in zip(X0, b1)]
    x2 = [x - lr * b for x, b in zip(x1, b2)]
    x3 = [x - lr * b for x, b in zip(x2, b3)]
    assert b2 == pytest.approx([1.45, 0.1, 0.8])
    _close(_trajectory("gd+m", lr, GRADS), [x1, x2, x3])


def test_sign_descent_hand_computation():
    lr = 0.25
    # signs: (+,-,+), (+,+,-), (-,+,0): a zero gradient entry does not move
    expected = [[0.75, -1.75, 0.25], [0.5, -2.0, 0.5], [0.75, -2.25, 0.5]]
    _close(_trajectory("sign", lr, GRADS), expected)


def test_sign_momentum_averages_signs_not_signum():
    lr = 1.0
    grads = [[3.0, -1.0], [-1.0, -1.0]]
    # momentum of signs: b2 = 0.9 * (+1, -1) + (-1, -1) = (-0.1, -1.9);
    # signum would be sign(0.9 * g1 + g2) = sign(1.7, -1.9) = (+1, -1)
    expected = [[0.0 - 1.0, 0.0 + 1.0], [-1.0 + 0.1, 1.0 + 1.9]]
    _close(_trajectory("sign+m", lr, grads, x0=[0.0, 0.0]), expected)


def _two_tensor_trajectory(name, lr, grads):
    a = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    b = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    optimizer = make_optimizer(name, [a, b], lr)
    out = []
    for ga, gb in grads:
        a.grad, b.grad = torch.tensor(ga, dtype=torch.float64), torch.tensor(gb, dtype=torch.float64)
        optimizer.step()
        out.append(a.detach().tolist() + b.detach().tolist())
    return out


NORM_GRADS = [([3.0, 0.0, 0.0], [0.0, 4.0]), ([0.0, 0.0, 1.0], [0.0, 0.0])]


def test_normalized_gd_normalises_over_all_parameters_together():
    # step 1: ||g|| = 5 over both tensors -> u = (0.6, 0, 0 | 0, 0.8); per tensor would give (1, 0, 0 | 0, 1)
    # step 2: ||g|| = 1 -> u = (0, 0, 1 | 0, 0)
    expected = [[-0.6, 0.0, 0.0, 0.0, -0.8], [-0.6, 0.0, -1.0, 0.0, -0.8]]
    _close(_two_tensor_trajectory("normgd", 1.0, NORM_GRADS), expected)


def test_normalized_gd_momentum_normalises_before_the_momentum():
    # b1 = u1 = (0.6, 0, 0 | 0, 0.8); b2 = 0.9 b1 + u2 = (0.54, 0, 1 | 0, 0.72)
    expected = [[-0.6, 0.0, 0.0, 0.0, -0.8], [-1.14, 0.0, -1.0, 0.0, -1.52]]
    _close(_two_tensor_trajectory("normgd+m", 1.0, NORM_GRADS), expected)


def _adam_by_hand(beta1, beta2, lr, eps, grads, x0):
    x, m, v, out = list(x0), [0.0] * len(x0), [0.0] * len(x0), []
    for t, g in enumerate(grads, start=1):
        for i, gi in enumerate(g):
            m[i] = beta1 * m[i] + (1 - beta1) * gi
            v[i] = beta2 * v[i] + (1 - beta2) * gi * gi
            m_hat, v_hat = m[i] / (1 - beta1**t), v[i] / (1 - beta2**t)
            x[i] -= lr * m_hat / (math.sqrt(v_hat) + eps)
        out.append(list(x))
    return out


def test_adam_without_momentum_hand_computation():
    lr = 0.1
    trajectory = _trajectory("adam", lr, GRADS)
    # first step: bias-corrected update is g / (|g| + eps), i.e. lr * sign(g) up to eps
    assert trajectory[0] == pytest.approx([0.9, -1.9, 0.4], abs=1e-8)
    # second step with beta1 = 0: g2 / sqrt((0.999 * 0.001 g1^2 + 0.001 g2^2) / (1 - 0.999^2))
    v_hat = [(0.999 * 0.001 * g1**2 + 0.001 * g2**2) / (1 - 0.999**2) for g1, g2 in zip(GRADS[0], GRADS[1])]
    x2 = [x - lr * g / (math.sqrt(v) + 1e-8) for x, g, v in zip(trajectory[0], GRADS[1], v_hat)]
    _close(trajectory[1:2], [x2])
    _close(trajectory, _adam_by_hand(0.0, 0.999, lr, 1e-8, GRADS, X0))


def test_adam_with_momentum_hand_computation():
    lr = 0.1
    trajectory = _trajectory("adam+m", lr, GRADS)
    # second step: m_hat = (0.9 * 0.1 g1 + 0.1 g2) / (1 - 0.81)
    m_hat = [(0.09 * g1 + 0.1 * g2) / 0.19 for g1, g2 in zip(GRADS[0], GRADS[1])]
    v_hat = [(0.999 * 0.001 * g1**2 + 0.001 * g2**2) / (1 - 0.999**2) for g1, g2 in zip(GRADS[0], GRADS[1])]
    x2 = [x - lr * m / (math.sqrt(v) + 1e-8) for x, m, v in zip(trajectory[0], m_hat, v_hat)]
    _close(trajectory[1:2], [x2])
    _close(trajectory, _adam_by_hand(0.9, 0.999, lr, 1e-8, GRADS, X0))


def test_adagrad_hand_computation():
    lr = 0.5
    expected, x, total = [], list(X0), [0.0] * 3
    for g in GRADS:
        total = [s + gi * gi for s, gi in zip(total, g)]
        x = [xi - lr * gi / (math.sqrt(s) + 1e-10) for xi, gi, s in zip(x, g, total)]
        expected.append(list(x))
    # the first step moves every coordinate with a nonzero gradient by exactly lr
    assert expected[0] == pytest.approx([0.5, -1.5, 0.0], abs=1e-9)
    _close(_trajectory("adagrad", lr, GRADS), expected)


def _compare_with_torch(name, torch_cls, torch_kwargs, dtype, steps=6, lr=0.05):
    """Both optimizers on the gradients of a small least-squares problem: same iterates."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(5, 3, generator=generator, dtype=dtype)
    target = torch.randn(5, generator=generator, dtype=dtype)
    w0 = torch.randn(3, generator=generator, dtype=dtype)
    b0 = torch.randn(1, generator=generator, dtype=dtype)
    iterates = []
    for build in (lambda ps: make_optimizer(name, ps, lr), lambda ps: torch_cls(ps, lr=lr, **torch_kwargs)):
        w, b = torch.nn.Parameter(w0.clone()), torch.nn.Parameter(b0.clone())
        optimizer = build([w, b])
        path = []
        for _ in range(steps):
            optimizer.zero_grad()
            ((a @ w + b - target) ** 2).mean().backward()
            optimizer.step()
            path.append(torch.cat([w.detach(), b.detach()]).clone())
        iterates.append(torch.stack(path))
    return iterates


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("name", "betas"), [("adam", (0.0, 0.999)), ("adam+m", (0.9, 0.999))])
def test_adam_matches_torch_adam(name, betas, dtype):
    ours, theirs = _compare_with_torch(name, torch.optim.Adam, {"betas": betas, "eps": 1e-8}, dtype)
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(ours, theirs, rtol=tol, atol=tol)
    assert not torch.equal(ours[0], ours[-1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_adagrad_matches_torch_adagrad(dtype):
    ours, theirs = _compare_with_torch("adagrad", torch.optim.Adagrad, {}, dtype)
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(ours, theirs, rtol=tol, atol=tol)


@pytest.mark.parametrize(("name", "momentum"), [("gd", 0.0), ("gd+m", 0.9)])
def test_gd_matches_torch_sgd(name, momentum):
    ours, theirs = _compare_with_torch(name, torch.optim.SGD, {"momentum": momentum}, torch.float64)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)


# ---- registry ----------------------------------------------------------------------------------------


@pytest.fixture
def private_registry(monkeypatch):
    """Registrations made in a test vanish after it (the registry is a module-level dict)."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def test_one_line_registration_is_usable_everywhere(private_registry, tmp_path):
    register_optimizer("mysgd", torch.optim.SGD, momentum=0.5)
    assert "mysgd" in optimizer_names()
    # the generic checks pass for the user's optimizer like for a built-in
    check_generic_optimizer("mysgd")
    check_zero_gradient_is_a_fixed_point("mysgd")
    check_state_dict_resumes_the_trajectory("mysgd")
    # its defaults reach the class: heavy-ball with beta = 0.5
    b2 = [0.5 * g1 + g2 for g1, g2 in zip(GRADS[0], GRADS[1])]
    x1 = [x - 0.1 * g for x, g in zip(X0, GRADS[0])]
    _close(_trajectory("mysgd", 0.1, GRADS[:2]), [x1, [x - 0.1 * b for x, b in zip(x1, b2)]])
    # and a spec can run it: same trajectory as the built-in heavy-ball GD with momentum 0.5
    spec = RunSpec(problem_options={"m": 4}, optimizer="mysgd", lr=0.5, steps=4)
    record = run(spec, tmp_path)
    assert record.status == "complete"
    builtin = RunSpec(problem_options={"m": 4}, optimizer="gd", optimizer_options={"momentum": 0.5}, lr=0.5, steps=4)
    reference = run(builtin, tmp_path)
    assert record.run_id != reference.run_id
    torch.testing.assert_close(record.history.loss, reference.history.loss, rtol=1e-6, atol=0)


def test_registration_is_cleaned_up():
    assert "mysgd" not in optimizer_names()


def test_register_rejects_non_optimizers(private_registry):
    with pytest.raises(TypeError):
        register_optimizer("bad", torch.nn.Linear)


def test_resolve_optimizer_loads_a_class_from_a_path():
    entry = resolve_optimizer("torch.optim:SGD")
    assert entry.cls is torch.optim.SGD
    optimizer = make_optimizer("torch.optim:SGD", [torch.nn.Parameter(torch.zeros(2))], 0.1, {"momentum": "0.5"})
    assert isinstance(optimizer, torch.optim.SGD)
    assert optimizer.param_groups[0]["momentum"] == 0.5  # string options are read as literals


@pytest.mark.parametrize("path", ["torch.optim:NoSuchOptimizer", "no_such_module_xyz:Opt", "torch.nn:Linear"])
def test_bad_optimizer_paths_raise_config_error(path):
    with pytest.raises(ConfigError, match="optimizer"):
        resolve_optimizer(path)


def test_unknown_optimizer_name_lists_the_choices():
    with pytest.raises(ConfigError) as info:
        make_optimizer("adm", [torch.nn.Parameter(torch.zeros(2))], 0.1)
    message = str(info.value)
    assert "'adm'" in message
    for name in optimizer_names():
        assert name in message


@pytest.mark.parametrize("name", optimizer_names())
def test_unknown_optimizer_option_is_an_error_naming_the_choices(name):
    with pytest.raises(ConfigError, match="'mometum'.*choose from"):
        make_optimizer(name, [torch.nn.Parameter(torch.zeros(2))], 0.1, {"mometum": 0.9})
    with pytest.raises(ConfigError, match="mometum"):
        RunSpec(problem_options={"m": 4}, optimizer=name, optimizer_options={"mometum": 0.9}, lr=0.1, steps=1).run_id


def test_bad_option_values_raise_config_error():
    params = [torch.nn.Parameter(torch.zeros(2))]
    with pytest.raises(ConfigError, match="momentum"):
        make_optimizer("gd", params, 0.1, {"momentum": 1.5})
    with pytest.raises(ConfigError, match="betas"):
        make_optimizer("adam", params, 0.1, {"betas": (1.0, 0.999)})


def test_momentum_option_on_gd_equals_gd_m():
    """``gd`` with momentum=0.9 is the same optimizer as ``gd+m`` (and ``gd+m`` with its default is ``gd+m``)."""
    a, b = _trajectory("gd", 0.1, GRADS, options={"momentum": 0.9}), _trajectory("gd+m", 0.1, GRADS)
    assert a == b
    spec = RunSpec(problem_options={"m": 4}, optimizer="gd+m", lr=0.1, steps=1)
    same = RunSpec(problem_options={"m": 4}, optimizer="gd+m", optimizer_options={"momentum": "0.9"}, lr=0.1, steps=1)
    assert spec.run_id == same.run_id


def test_training_with_each_optimizer_lowers_the_loss():
    """On a small RHTL problem every built-in reduces the full-batch loss in a few steps at lr = 1e-2."""
    from heavytail import LinearProblem

    for name in ("gd", "gd+m", "sign", "sign+m", "normgd", "normgd+m", "adam", "adam+m", "adagrad"):
        problem = LinearProblem(m=4).build(0)
        result = train(problem, make_optimizer(name, problem.model.parameters(), 1e-2), 5)
        assert not result.diverged
        assert result.history.loss[-1] < result.history.loss[0], name


@pytest.mark.parametrize("name", ["gd", "gd+m", "adam", "adam+m", "normgd", "normgd+m", "sign", "sign+m", "adagrad"])
def test_foreach_update_equals_the_per_tensor_reference(name):
    """The foreach path (used on CUDA) gives the reference update, bit for bit on the CPU."""
    def parameters_after(foreach):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(7, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))
        optimizer = make_optimizer(name, model.parameters(), 1e-2)
        optimizer.foreach = foreach
        x, y = torch.randn(32, 7), torch.randint(0, 3, (32,))
        for _ in range(4):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
        return [p.detach().clone() for p in model.parameters()], optimizer.state_dict()

    reference, reference_state = parameters_after(False)
    fast, fast_state = parameters_after(True)
    for a, b in zip(reference, fast):
        assert torch.equal(a, b)
    assert str(reference_state) == str(fast_state)
