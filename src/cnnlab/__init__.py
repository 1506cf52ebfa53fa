"""cnnlab: train, compare, ablate and analyse CNN image classifiers, fast and reproducibly.

`import cnnlab as cl` is the whole public API: cl.load_dataset, cl.create_model, cl.train, cl.evaluate,
cl.predict, cl.run_study, cl.estimate_study, cl.compare, cl.crosseval, cl.select, cl.report, cl.quickstart,
and cl.Run / cl.Study to open folders. Names load on first use, so `import cnnlab` stays cheap (no torch)."""

from .errors import CnnlabError, ConfigError, DataError, UnknownNameError

__version__ = "0.1.0"

_LAZY = {  # public name -> module that defines it
    **dict.fromkeys(("load_dataset", "add_data", "create_model", "train", "evaluate", "predict", "run_study", "estimate_study",
                     "compare", "crosseval", "select", "report", "quickstart", "Prediction", "StudyEstimate",
                     "CellEstimate", "CrossEvaluation", "Selection", "Report", "Quickstart"), "api"),
    **dict.fromkeys(("Run", "Study", "RunSummary", "Scores"), "results"),
    **dict.fromkeys(("RunConfig", "load_config", "build_config"), "config"),
    **dict.fromkeys(("describe_dataset", "stratified_split", "stratified_subset", "sample_grid", "class_histogram",
                     "emnist_label_map"), "data"),
    **dict.fromkeys(("list_models", "register_model"), "models"),
    **dict.fromkeys(("Callback", "EarlyStopping", "ReduceLROnPlateau", "History"), "engine.callbacks"),
}
_MODULES = {"plots": "analysis.plots"}  # the figure functions, for notebooks

__all__ = ["CnnlabError", "ConfigError", "DataError", "UnknownNameError", "__version__", *_LAZY, *_MODULES]


def __getattr__(name: str):
    from importlib import import_module

    if name in _MODULES:
        value = import_module(f".{_MODULES[name]}", __name__)
    elif name in _LAZY:
        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
    else:
        raise AttributeError(f"module 'cnnlab' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
