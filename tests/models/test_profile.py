import torch
from torch import nn

from cnnlab.models import create_model, format_table, layer_table, profile_model, profile_module
from cnnlab.models.profile import count_macs


def small_net():
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),  # 8x8 out: 8*8 positions * 4 filters * 1*3*3 = 2,304 MACs
        nn.ReLU(),
        nn.MaxPool2d(2),  # 4x4, no MACs
        nn.Conv2d(4, 8, 3),  # 2x2 out: 2*2 * 8 * 4*3*3 = 1,152 MACs
        nn.Flatten(),
        nn.Linear(32, 5),  # 32 * 5 = 160 MACs
    )


def test_macs_of_a_small_net_by_hand():
    assert count_macs(small_net(), (1, 8, 8)) == 2_304 + 1_152 + 160


def test_profile_counts_parameters_exactly_and_leaves_the_weights_alone():
    net = small_net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    prof = profile_module(net, (1, 8, 8))
    assert prof.params == sum(p.numel() for p in net.parameters()) == (36 + 4) + (288 + 8) + (160 + 5)
    assert prof.trainable_params == prof.params
    assert prof.size_mb == prof.params * 4 / 1e6
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_batch_norm_stats_are_not_updated_and_the_mode_is_restored():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    profile_module(net, (1, 5, 5))
    assert net.training and net[1].num_batches_tracked == 0 and torch.equal(net[1].running_mean, torch.zeros(2))


def test_frozen_parameters_are_not_trainable():
    net = small_net()
    net[0].requires_grad_(False)
    assert profile_module(net, (1, 8, 8)).trainable_params == profile_module(net, (1, 8, 8)).params - 40


def test_lenet5_and_rescnn_by_name_on_the_meta_device():
    lenet = profile_model("lenet5", 10, 1, 28)
    # C1 28*28*6*25 + C3 10*10*16*6*25 + C5 400*120 + F6 120*84 + out 84*10
    assert (lenet.params, lenet.macs) == (61_706, 117_600 + 240_000 + 48_000 + 10_080 + 840)
    built = create_model("rescnn", 47, 1, 28)
    prof = profile_model("rescnn", 47, 1, 28)
    assert prof.params == sum(p.numel() for p in built.module.parameters()) == 299_543
    assert 25e6 < prof.macs < 35e6  # the ~60 MFLOP forward budget of the issue
    assert prof.macs == count_macs(built.module, (1, 28, 28))


def test_zoo_profile_counts_at_the_padded_size():
    prof = profile_model("inception_v3", 10, 1, 28)
    assert prof.input_shape == (1, 75, 75)
    assert prof.params > 20e6 and prof.macs > 0


def test_layer_table_rows_in_execution_order():
    rows = layer_table(small_net(), (1, 8, 8))
    assert [(r.name, r.type, r.output_shape, r.params) for r in rows] == [
        ("0", "Conv2d", (1, 4, 8, 8), 40),
        ("1", "ReLU", (1, 4, 8, 8), 0),
        ("2", "MaxPool2d", (1, 4, 4, 4), 0),
        ("3", "Conv2d", (1, 8, 2, 2), 296),
        ("4", "Flatten", (1, 32), 0),
        ("5", "Linear", (1, 5), 165),
    ]


def test_layer_table_at_a_depth_sums_parameters():
    built = create_model("rescnn", 10, 1, 28)
    rows = layer_table(built.module, built.input_shape, depth=1)
    assert [r.name for r in rows] == ["stem", "stages", "head"]
    assert sum(r.params for r in rows) == sum(p.numel() for p in built.module.parameters())
    assert rows[-1].output_shape == (1, 10)


def test_format_table_has_rows_and_totals():
    net = small_net()
    text = format_table(layer_table(net, (1, 8, 8)), profile_module(net, (1, 8, 8)))
    assert "Conv2d" in text and "[1, 8, 2, 2]" in text and "Total params: 501" in text and "MACs" in text
