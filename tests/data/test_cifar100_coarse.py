"""CIFAR-100's fine → superclass table, read from the label pairs of a small archive in the official
layout, and a real fine-class model scored in the 20 superclasses through the command line."""

from __future__ import annotations

import numpy as np
import pytest
from cli_helpers import assert_one_line_error, table_row
from data_helpers import make_archive, py2_pickle

from cnnlab.analysis.crosseval import crosseval, label_mapping
from cnnlab.data.cache import data_home
from cnnlab.data.cifar import read_fine_to_coarse
from cnnlab.data.load import cifar100_fine_to_coarse
from cnnlab.errors import ConfigError, DataError

# The official grouping: each superclass and its five fine classes (https://www.cs.toronto.edu/~kriz/cifar.html).
SUPERCLASSES = {
    "aquatic_mammals": ("beaver", "dolphin", "otter", "seal", "whale"),
    "fish": ("aquarium_fish", "flatfish", "ray", "shark", "trout"),
    "flowers": ("orchid", "poppy", "rose", "sunflower", "tulip"),
    "food_containers": ("bottle", "bowl", "can", "cup", "plate"),
    "fruit_and_vegetables": ("apple", "mushroom", "orange", "pear", "sweet_pepper"),
    "household_electrical_devices": ("clock", "keyboard", "lamp", "telephone", "television"),
    "household_furniture": ("bed", "chair", "couch", "table", "wardrobe"),
    "insects": ("bee", "beetle", "butterfly", "caterpillar", "cockroach"),
    "large_carnivores": ("bear", "leopard", "lion", "tiger", "wolf"),
    "large_man-made_outdoor_things": ("bridge", "castle", "house", "road", "skyscraper"),
    "large_natural_outdoor_scenes": ("cloud", "forest", "mountain", "plain", "sea"),
    "large_omnivores_and_herbivores": ("camel", "cattle", "chimpanzee", "elephant", "kangaroo"),
    "medium_mammals": ("fox", "porcupine", "possum", "raccoon", "skunk"),
    "non-insect_invertebrates": ("crab", "lobster", "snail", "spider", "worm"),
    "people": ("baby", "boy", "girl", "man", "woman"),
    "reptiles": ("crocodile", "dinosaur", "lizard", "snake", "turtle"),
    "small_mammals": ("hamster", "mouse", "rabbit", "shrew", "squirrel"),
    "trees": ("maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree"),
    "vehicles_1": ("bicycle", "bus", "motorcycle", "pickup_truck", "train"),
    "vehicles_2": ("lawn_mower", "rocket", "streetcar", "tank", "tractor"),
}
COARSE = tuple(SUPERCLASSES)  # the official files list both label sets alphabetically
FINE = tuple(sorted(name for names in SUPERCLASSES.values() for name in names))
SUPERCLASS_OF = {fine: coarse for coarse, names in SUPERCLASSES.items() for fine in names}
TABLE = np.array([COARSE.index(SUPERCLASS_OF[name]) for name in FINE])
TRAIN_PER_CLASS, TEST_PER_CLASS = 8, 2


def class_images(fine: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Learnable images: the superclass sets the colour, the fine class's place in it the pattern."""
    rows, cols = np.mgrid[:32, :32]
    patterns = np.stack([(rows // 4) % 2, (cols // 4) % 2, ((rows // 4) + (cols // 4)) % 2,
                         ((rows + cols) // 6) % 2, (abs(rows - 15.5) < 8) & (abs(cols - 15.5) < 8)]).astype(float)
    levels = np.array([40, 120, 200])
    colours = np.array([(r, g, b) for r in levels for g in levels for b in levels])[:: 27 // 20][:20]
    coarse = TABLE[fine]
    place = np.array([SUPERCLASSES[COARSE[c]].index(FINE[f]) for f, c in zip(fine, coarse)])
    images = colours[coarse][:, :, None, None] * (0.6 + 0.4 * patterns[place][:, None])
    images = images + rng.normal(0, 12, images.shape)
    return np.clip(images, 0, 255).astype(np.uint8)


def cifar100_batch(per_class: int, rng: np.random.Generator, label: bytes) -> dict:
    fine = rng.permutation(np.repeat(np.arange(len(FINE)), per_class))
    return {b"filenames": [b"%s_s_%06d.png" % (FINE[f].encode(), i) for i, f in enumerate(fine)],
            b"batch_label": label, b"fine_labels": [int(f) for f in fine],
            b"coarse_labels": [int(TABLE[f]) for f in fine], b"data": class_images(fine, rng).reshape(len(fine), 3072)}


def cifar100_archive(path, relabel=None):
    """A tiny archive in CIFAR-100's official layout; `relabel(batches)` may corrupt its labels first."""
    rng = np.random.default_rng(0)
    batches = {"train": cifar100_batch(TRAIN_PER_CLASS, rng, b"training batch 1 of 1"),
               "test": cifar100_batch(TEST_PER_CLASS, rng, b"testing batch 1 of 1")}
    if relabel is not None:
        relabel(batches)
    meta = {b"fine_label_names": [n.encode() for n in FINE], b"coarse_label_names": [n.encode() for n in COARSE]}
    return make_archive(path, "cifar-100-python", {
        "meta": py2_pickle(meta), **{name: py2_pickle(batch) for name, batch in batches.items()}})


@pytest.fixture
def archive(tmp_path):
    return cifar100_archive(tmp_path / "cifar-100-small.tar.gz")


def test_the_table_is_the_archives_fine_and_coarse_label_pairs(archive, cli):
    from_file = read_fine_to_coarse(archive)
    assert from_file.fine_classes == FINE and from_file.coarse_classes == COARSE
    np.testing.assert_array_equal(from_file.table, TABLE)
    assert from_file.pairs() == SUPERCLASS_OF
    with pytest.raises(DataError, match="not on this machine.*cnnlab data add cifar100"):
        cifar100_fine_to_coarse()
    added = cli("data", "add", "cifar100", "--from", archive)
    assert added.exit_code == 0, added.stderr
    np.testing.assert_array_equal(cifar100_fine_to_coarse().table, TABLE)


def test_a_fine_class_seen_by_no_image_has_no_superclass(tmp_path):
    def drop_apples(batches):
        for batch in batches.values():
            keep = [i for i, f in enumerate(batch[b"fine_labels"]) if FINE[f] != "apple"]
            for key in (b"filenames", b"fine_labels", b"coarse_labels"):
                batch[key] = [batch[key][i] for i in keep]
            batch[b"data"] = batch[b"data"][keep]

    hierarchy = read_fine_to_coarse(cifar100_archive(tmp_path / "no-apples.tar.gz", drop_apples))
    assert hierarchy.table[FINE.index("apple")] == -1
    assert "apple" not in hierarchy.pairs() and len(hierarchy.pairs()) == 99


def _apple_as_flower(split: str):
    def relabel(batches):
        batch = batches[split]
        first_apple = batch[b"fine_labels"].index(FINE.index("apple"))
        batch[b"coarse_labels"][first_apple] = COARSE.index("flowers")
    return relabel


@pytest.mark.parametrize("split", ["train", "test"])  # within one batch, and against the other batch
def test_an_archive_with_a_fine_class_in_two_superclasses_is_refused(tmp_path, cli, split):
    bad = cifar100_archive(tmp_path / "relabelled.tar.gz", _apple_as_flower(split))
    with pytest.raises(DataError, match=rf"{bad}:{split}: fine class 'apple' is labelled with the superclasses "
                                        r"'flowers' and 'fruit_and_vegetables'"):
        read_fine_to_coarse(bad)
    assert_one_line_error(cli("data", "add", "cifar100", "--from", bad), "'apple'", "exactly one",
                          "add the official cifar-100-python.tar.gz")
    assert not (data_home() / "raw" / "cifar100").exists() or not any((data_home() / "raw" / "cifar100").iterdir())


def test_superclass_predictions_cannot_be_split_into_fine_classes():
    with pytest.raises(ConfigError, match="cannot be split into cifar100's fine classes"):
        label_mapping("cifar100-coarse", COARSE, "cifar100", FINE)


# one validation image per fine class; threads 1 keeps the run reproducible
TRAIN = ("--model", "lenet5", "--val", 100, "--batch-size", 32, "--lr", 3e-3, "--threads", 1, "--device", "cpu", "-q")


def test_a_fine_model_scored_in_the_superclasses(archive, cli, tmp_path):
    assert cli("data", "add", "cifar100", "--from", archive).exit_code == 0
    run = tmp_path / "fine"
    trained = cli("train", "--data", "cifar100", *TRAIN, "--epochs", 6, "--out", run)
    assert trained.exit_code == 0, trained.stderr

    result = cli("crosseval", run, "--data", "cifar100,cifar100-coarse")
    assert result.exit_code == 0, result.stderr
    fine, coarse = crosseval([run], ["cifar100", "cifar100-coarse"])
    images = len(FINE) * TEST_PER_CLASS
    for cell in (fine, coarse):
        assert (cell.images, cell.scored, cell.unmapped, cell.seen) == (images, images, 0, 0)
    assert "superclasses by the fine → superclass pairs" in coarse.rule
    # the same predictions, once in 100 classes and once merged into 20: merging only forgives mistakes
    assert coarse.accuracy >= fine.accuracy
    assert fine.accuracy > 0.05 and coarse.accuracy > 0.6  # chance: 1 % and 5 %
    from cnnlab.data import load_dataset
    from cnnlab.engine.inference import load_run

    test = load_dataset("cifar100-coarse")["test"]
    logits, _, _ = load_run(run).trainer.predict_logits(test.images)
    assert coarse.accuracy == pytest.approx(float((TABLE[logits.argmax(1).numpy()] == test.labels).mean()))
    assert table_row(result.stdout, f"{run} (cifar100)")[1:] == [f"{fine.accuracy:.2%}", f"{coarse.accuracy:.2%}"]
    assert f"on cifar100-coarse: scored {images:,} of {images:,} test images (0 without a counterpart" in result.stdout

    # a contradictory archive put into the data home by hand is refused when it is read
    raw = data_home() / "raw" / "cifar100"
    for old in raw.glob("*.tar.gz"):
        old.unlink()
    cifar100_archive(raw / "relabelled.tar.gz", _apple_as_flower("train"))
    assert_one_line_error(cli("crosseval", run, "--data", "cifar100-coarse"), "--data cifar100-coarse", "'apple'")


def test_a_superclass_model_is_refused_on_the_fine_classes(archive, cli, tmp_path):
    assert cli("data", "add", "cifar100", "--from", archive).exit_code == 0
    run = tmp_path / "coarse"
    trained = cli("train", "--data", "cifar100-coarse", *TRAIN, "--epochs", 1, "--out", run)
    assert trained.exit_code == 0, trained.stderr
    assert_one_line_error(cli("crosseval", run, "--data", "cifar100"), "cannot be split into cifar100's fine classes",
                          "score a cifar100 run on cifar100-coarse instead")
