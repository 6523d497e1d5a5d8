from __future__ import annotations

import numpy as np
import pytest
import torch

from astrofm.data.dataset import write_dataset
from astrofm.model import AstroFM
from tests.helpers.synthetic import make_samples


def tiny_config() -> dict:
    return {
        "embed_dim": 16,
        "modalities": {
            "image": {"encoder": "image_vit",
                      "config": {"dim": 16, "depth": 1, "heads": 2, "in_chans": 4, "img_size": 8, "patch_size": 4,
                                 "pool_heads": 2},
                      "transforms": [{"type": "ArcsinhScale"}]},
            "spectrum": {"encoder": "spectrum",
                         "config": {"dim": 16, "depth": 1, "heads": 2, "window": 16, "pool_heads": 2},
                         "transforms": [{"type": "MaskBadPixels"}, {"type": "IvarNormalize"}]},
        },
    }


@pytest.fixture(scope="session")
def tiny_model() -> AstroFM:
    torch.manual_seed(0)
    model = AstroFM.from_config(tiny_config())
    model.fit_transforms(make_samples(50, seed=11))
    return model.eval()


@pytest.fixture(scope="session")
def galaxy_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("embed") / "gal"
    samples = make_samples(600, seed=12)
    for s in samples[::3]:
        del s["spectrum"]  # a third of the objects lack a spectrum
    images = [dict(s) for s in samples]
    write_dataset(root / "ls", [{k: v for k, v in s.items() if k != "spectrum"} for s in images])
    write_dataset(root / "desi", [{k: v for k, v in s.items() if k != "image"} for s in samples if "spectrum" in s])
    return root, np.array([s["object_id"] for s in samples])
