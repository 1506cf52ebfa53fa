import subprocess
import sys

import pytest
import torch

from cnnlab.config import build_config
from cnnlab.engine.optim import OPTIMIZERS, SCHEDULES, lr_factor, make_optimizer
from cnnlab.errors import ConfigError, UnknownNameError


@pytest.mark.parametrize("name", OPTIMIZERS.names())
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
    with pytest.raises(UnknownNameError, match="did you mean 'adam'.*known: .*sgd_nesterov"):
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
    with pytest.raises(UnknownNameError, match="unknown schedule 'linear'"):
        lr_factor("linear", 0, 10)


def test_fused_where_torch_has_it_and_foreach_elsewhere():
    w = torch.nn.Parameter(torch.zeros(1))
    for name in OPTIMIZERS.names():
        defaults = make_optimizer(name, [w], lr=0.1).defaults
        fused = name in ("sgd", "sgd_nesterov", "adagrad", "adam", "adamw")
        assert bool(defaults.get("fused")) == fused and (fused or defaults["foreach"]), name


def test_a_tensor_lr_per_group():
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = make_optimizer("adam", [{"params": [a], "lr_mult": 0.1}, {"params": [b]}], lr=0.01, lr_as_tensor=True)
    lrs = [group["lr"] for group in opt.param_groups]
    assert all(torch.is_tensor(lr) for lr in lrs) and lrs[0] is not lrs[1]


@pytest.fixture
def registered():
    """A schedule and an optimizer added by one call each, as a study's `imports:` module would; removed after."""
    SCHEDULES.register("linear_test", lambda progress, **_: 1 - progress)
    OPTIMIZERS.register("asgd_test", lambda params, lr, weight_decay, momentum: torch.optim.ASGD(
        params, lr=lr, weight_decay=weight_decay))
    yield
    SCHEDULES.unregister("linear_test")
    OPTIMIZERS.unregister("asgd_test")


def test_one_registration_makes_a_schedule_and_an_optimizer_valid_config_values(registered):
    config = build_config(overrides=["train.schedule=linear_test", "train.optimizer=asgd_test"])
    assert (config.train.schedule, config.train.optimizer) == ("linear_test", "asgd_test")
    assert lr_factor("linear_test", 25, 100) == pytest.approx(0.75)
    assert lr_factor("linear_test", 5, 100, warmup_steps=10) == pytest.approx(0.6)  # warm-up comes first
    w = torch.nn.Parameter(torch.zeros(1))
    assert isinstance(make_optimizer("asgd_test", [w], lr=0.1, weight_decay=1e-3), torch.optim.ASGD)


def test_unknown_names_in_a_config_list_the_registered_ones_and_the_closest():
    with pytest.raises(ConfigError) as info:
        build_config(overrides=["train.optimizer=adm"])
    message = str(info.value)
    assert message.startswith("The 'train.optimizer' setting must be one of 'adagrad', 'adam'")
    assert "(did you mean 'adam'" in message and message.endswith("Got 'adm' instead.")
    with pytest.raises(ConfigError, match=r"'train.schedule' setting must be one of 'cosine', 'none', 'onecycle', "
                                          r"'step' \(did you mean 'cosine'\?\)"):
        build_config(overrides=["train.schedule=cosin"])


def test_the_config_reads_the_registries_without_torch():
    code = "import sys, cnnlab.config; print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
