"""The data layer: named and user datasets as uint8 arrays, verified sources, cache, splits, exploration."""

from .cache import data_home
from .dataset import Dataset, Split, channel_stats
from .datasets import DATASETS, families
from .emnist import label_map as emnist_label_map
from .explore import class_histogram, dataset_info, describe_dataset, image_hashes, sample_grid
from .load import add_local, family_datasets, load_dataset, load_splits
from .split import (carve_splits, configured_splits, prepare_splits, stratified_indices, stratified_split,
                    stratified_subset)

__all__ = [
    "DATASETS", "Dataset", "Split", "add_local", "carve_splits", "channel_stats", "class_histogram",
    "configured_splits", "data_home", "dataset_info", "describe_dataset", "emnist_label_map", "families",
    "family_datasets", "image_hashes", "load_dataset", "load_splits", "prepare_splits", "sample_grid",
    "stratified_indices", "stratified_split", "stratified_subset",
]
