import pytest
import torch

from cnnlab.engine.optim import OPTIMIZERS, lr_factor, make_optimizer, make_scheduler
from cnnlab.errors import ConfigError


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_reduces_a_quadratic(name):
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(10))
    opt = make_optimizer(name, [w], lr=0.05)
    start = float((w ** 2).sum().detach())
    for _ in range(50):
        opt.zero_grad()
        (w ** 2).sum().backward()
        opt.step()
    assert float((w ** 2).sum().detach()) < start * 0.9


def test_nesterov_and_weight_decay_are_passed():
    w = torch.nn.Parameter(torch.zeros(1))
    opt = make_optimizer("sgd_nesterov", [w], lr=0.1, weight_decay=1e-4)
    assert opt.defaults["nesterov"] and opt.defaults["weight_decay"] == 1e-4
    with pytest.raises(ConfigError, match="sgd_nesterov"):
        make_optimizer("adam2", [w], lr=0.1)


def test_schedules_shapes():
    assert lr_factor("none", 50, 100) == 1.0
    assert lr_factor("cosine", 0, 100) == pytest.approx(1.0)
    assert lr_factor("cosine", 50, 100) == pytest.approx(0.5)
    assert lr_factor("cosine", 100, 100) == pytest.approx(0.0)
    assert lr_factor("cosine", 4, 100, warmup_steps=10) == pytest.approx(0.5)
    assert lr_factor("step", 25, 100, step_every=10, gamma=0.5) == pytest.approx(0.25)
    peak = max(lr_factor("onecycle", s, 100) for s in range(100))
    assert peak == pytest.approx(1.0, abs=0.02) and lr_factor("onecycle", 99, 100) < 0.01
    with pytest.raises(ConfigError):
        lr_factor("linear", 0, 10)


def test_scheduler_drives_the_optimizer_lr():
    w = torch.nn.Parameter(torch.zeros(1))
    opt = make_optimizer("sgd", [w], lr=1.0)
    sched = make_scheduler(opt, "cosine", total_steps=10)
    for _ in range(5):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5)
