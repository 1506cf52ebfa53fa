"""The data layer: named and user datasets as uint8 arrays, verified sources, cache, splits, exploration."""

from .cache import data_home
from .catalog import DATASETS, families
from .dataset import Dataset, Split, channel_stats
from .emnist import label_map as emnist_label_map
from .explore import class_histogram, dataset_info, image_hashes, sample_grid
from .load import add_local, load_dataset
from .split import carve_splits, prepare_splits, stratified_indices, stratified_split, stratified_subset

__all__ = [
    "DATASETS", "Dataset", "Split", "add_local", "carve_splits", "channel_stats", "class_histogram", "data_home",
    "dataset_info", "emnist_label_map", "families", "image_hashes", "load_dataset", "prepare_splits", "sample_grid",
    "stratified_indices", "stratified_split", "stratified_subset",
]
