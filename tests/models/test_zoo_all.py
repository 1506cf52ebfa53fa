"""Every curated model, built for 1x28x28 images and 7 classes, trains one step through its
input transform (once per CI run: about a minute on 2 CPU cores)."""

import gc
import time

import pytest
import torch

from cnnlab.models import MODELS, create_model, list_models
from cnnlab.models.profile import _meta_forward


@pytest.mark.zoo
def test_every_curated_model_runs_forward_and_backward_on_two_grey_images():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8)
    labels = torch.tensor([0, 6])
    seconds, failures = {}, []
    for name in list_models():
        start = time.perf_counter()
        try:
            built = create_model(name, num_classes=7, in_chans=1, input_size=28)  # auto: the smallest input allowed
            x = built.transform(images)
            logits = built.module.train()(x)
            assert logits.shape == (2, 7), logits.shape
            torch.nn.functional.cross_entropy(logits, labels).backward()
            grads = [p.grad for p in built.module.parameters() if p.requires_grad]
            assert all(g is not None and torch.isfinite(g).all() for g in grads), "missing or non-finite gradients"
            entry = MODELS.get(name)
            if entry.min_side and entry.min_side > 1:  # the recorded minimum is the true one
                side = entry.min_side - 1
                with pytest.raises(RuntimeError):  # torch's shape checks
                    _meta_forward(built.module, (1, side, side))
        except Exception as exc:  # collect, so one run names every broken model
            failures.append(f"{name}: {type(exc).__name__}: {exc}")
        finally:
            built = x = logits = grads = None  # free the model before the next one
            gc.collect()
        seconds[name] = time.perf_counter() - start
    print("seconds per model:", {k: round(v, 2) for k, v in sorted(seconds.items(), key=lambda kv: -kv[1])})
    assert not failures, "\n".join(failures)
