"""cnnlab: train, compare, ablate and analyse CNN image classifiers, fast and reproducibly."""

from .errors import CnnlabError, ConfigError, DataError, UnknownNameError

__version__ = "0.1.0"

__all__ = ["CnnlabError", "ConfigError", "DataError", "UnknownNameError", "__version__"]
