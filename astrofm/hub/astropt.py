"""Import AstroPT checkpoints (the ``astropt`` 2.0.x ``ckpt.pt`` files) as astrofm ``ARModel``s.

An AstroPT checkpoint is a ``torch.save`` of ``{"model": state_dict, "model_args": {...},
"modality_registry": ModalityRegistry, "config": {...}, "optimizer": ..., ...}``, where the model
arguments and the registry hold AstroPT's own config classes (``ModalityConfig``, ...). It is
read with ``torch.load(weights_only=True)``: tensors and plain data only, plus three AstroPT
config classes that are rebuilt as inert attribute holders (never imported, never run). Any other
object in the file is refused with a :class:`DataFormatError` naming it.

The architecture maps one to one: per modality an MLP (or linear) token embedder, a position
embedding (learned table, or an MLP / linear map of continuous coordinates) and an MLP (or linear) head; a
pre-LayerNorm causal transformer with tanh-GELU MLPs; AstroPT's ``bias=False`` becomes zero biases.
The converted model gives AstroPT's next-token predictions and embeddings (``generate_embeddings``
mean over a modality's tokens after the middle block; ``embed_layer="final"`` for the last block
after the final LayerNorm) up to float32 rounding. Its embeddings are AstroPT's raw vectors; set
``model.config.embed_normalize = True`` for the unit vectors that the embedding store expects.

The modalities run in AstroPT's order, sorted by AstroPT name (``ModalityRegistry.names()``), whatever
the order the checkpoint lists them in.

Inputs: by default each AstroPT modality becomes a ``tokens`` modality that reads the same token
tensors AstroPT reads (``data["tokens"]``, optional ``data["positions"]``). With ``image_size``,
AstroPT's ``images`` modality reads raw images instead (``image_patches``: patches flattened
pixel-major with the band last, as AstroPT's dataset does). ``image_order`` is "raster", "spiral"
(AstroPT's spiral, its dataset's ``spiral=True``; not astrofm's own "spiral") or an explicit patch
order - the checkpoint does not record which order it was trained with. ``standardize`` (default
True, AstroPT's training pipeline) normalises each patch as AstroPT's ``normalise`` does,
``(x - mean) / (std + 1e-8)`` with the unbiased std; set it False for images normalised elsewhere.
"""

from __future__ import annotations

import logging
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from astrofm.ar import ARModel
from astrofm.errors import ConfigError, DataFormatError

log = logging.getLogger(__name__)

#: AstroPT's config classes that a checkpoint may hold; rebuilt as plain attribute holders.
ASTROPT_CLASSES = ("astropt.model.ModalityRegistry", "astropt.model.ModalityConfig", "astropt.model.GPTConfig")
#: AstroPT ``GPTConfig`` defaults (its public signature), for checkpoints that leave a field out.
GPT_DEFAULTS: dict[str, Any] = {"block_size": 1024, "n_layer": 12, "n_head": 12, "n_embd": 768, "n_chan": 1,
                                "dropout": 0.0, "bias": False, "attn_type": "causal", "tokeniser": "aim",
                                "lora_r": 0}
#: AstroPT modality names -> astrofm modality names.
DEFAULT_NAMES = {"images": "image", "spectra": "spectrum"}


class _Fields:
    """Inert stand-in for one of AstroPT's config classes: just the pickled attributes."""

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        self.__dict__.update(state)


_STANDINS = [(type(name.rsplit(".", 1)[1], (_Fields,), {}), name) for name in ASTROPT_CLASSES]


@dataclass
class AstroPTCheckpoint:
    """What astrofm needs from an AstroPT checkpoint."""

    state: dict[str, Tensor]
    #: ``GPTConfig`` fields (defaults filled in), without the modalities.
    model_args: dict[str, Any]
    #: Modalities in sequence order, each ``{"name", "input_size", "pos_input_size", "patch_size", "embed_pos"}``.
    modalities: list[dict[str, Any]]


def _fields(obj: Any) -> dict[str, Any]:
    return dict(obj.__dict__) if isinstance(obj, _Fields) else dict(obj)


def read_astropt_checkpoint(path: str | Path) -> AstroPTCheckpoint:
    """Read an AstroPT ``ckpt.pt`` without running any code from it (see the module doc)."""
    path = Path(path)
    try:
        with torch.serialization.safe_globals(_STANDINS):
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r"GLOBAL ([\w.]+)", str(error))
        raise DataFormatError(path, "refused to load: the checkpoint holds objects other than tensors, plain "
                                    "data and AstroPT's config classes", expected=list(ASTROPT_CLASSES),
                              found=found.group(1) if found else str(error).splitlines()[0]) from error
    except (OSError, RuntimeError) as error:
        raise DataFormatError(path, "not a readable torch checkpoint", found=str(error)) from error
    if not isinstance(raw, dict) or "model" not in raw or "model_args" not in raw:
        raise DataFormatError(path, "not an AstroPT checkpoint", expected="a dict with 'model' and 'model_args'",
                              found=sorted(raw) if isinstance(raw, dict) else type(raw).__name__)
    args = {**GPT_DEFAULTS, **_fields(raw["model_args"])}
    listed = args.pop("modalities", None)
    registry = raw.get("modality_registry")
    if listed is None and registry is not None:
        listed = list(_fields(registry).get("modalities", {}).values())
    if not listed:
        raise DataFormatError(path, "AstroPT checkpoint without modalities", field="model_args.modalities")
    modalities = sorted((_fields(m) for m in listed), key=lambda m: str(m["name"]))  # AstroPT's sequence order
    state = {}
    for key, value in raw["model"].items():
        for prefix in ("_orig_mod.", "module."):
            key = key.removeprefix(prefix)
        state[key] = value.float()
    return AstroPTCheckpoint(state, args, modalities)


def _tokenizer_spec(modality: Mapping[str, Any], args: Mapping[str, Any], image_size: int | None,
                    image_order: str | list[int], standardize: bool) -> tuple[str, dict[str, Any]]:
    common = {"embedder": "mlp" if args["tokeniser"] == "aim" else "linear", "bias": bool(args["bias"])}
    size, patch = int(modality["input_size"]), int(modality.get("patch_size") or 0)
    if (image_size is not None and modality["name"] == "images" and modality.get("embed_pos", True)
            and patch and size == patch * patch * int(args["n_chan"])):
        if image_size % patch:
            raise ConfigError(f"image_size {image_size} is not a multiple of AstroPT's patch size {patch}")
        if (image_size // patch) ** 2 > int(args["block_size"]):
            raise ConfigError(f"{(image_size // patch) ** 2} patches exceed AstroPT's block_size {args['block_size']}")
        return "image_patches", {**common, "in_chans": int(args["n_chan"]), "img_size": image_size,
                                 "patch_size": patch,
                                 "order": "astropt_spiral" if image_order == "spiral" else image_order,
                                 "standardize": "astropt" if standardize else False,
                                 "zero_bad_pixels": False}
    position = {"position": "index", "max_tokens": int(args["block_size"])} if modality.get("embed_pos", True) \
        else {"position": "coordinates", "position_size": int(modality["pos_input_size"])}
    return "tokens", {**common, "token_size": size, **position}


def _mlp_keys(source: str, target: str, mlp: bool) -> dict[str, str]:
    """AstroPT c_fc / c_proj layers -> astrofm Sequential indices (Linear, GELU, Linear) or one Linear."""
    pairs = {"c_fc": f"{target}.0", "c_proj": f"{target}.2"} if mlp else {"c_fc": f"{target}.0"}
    return {f"{source}.{a}.{p}": f"{b}.{p}" for a, b in pairs.items() for p in ("weight", "bias")}


def key_map(checkpoint: AstroPTCheckpoint, names: Mapping[str, str], specs: Mapping[str, tuple[str, dict[str, Any]]]
            ) -> dict[str, str]:
    """astrofm state-dict key -> AstroPT state-dict key."""
    mlp = checkpoint.model_args["tokeniser"] == "aim"
    mapping: dict[str, str] = {}
    for modality in checkpoint.modalities:
        theirs, ours = modality["name"], names[modality["name"]]
        mapping.update({v: k for k, v in _mlp_keys(f"transformer.wte.{theirs}", f"tokenizers.{ours}.embedder",
                                                   mlp).items()})
        mapping.update({v: k for k, v in _mlp_keys(f"lm_head.{theirs}", f"tokenizers.{ours}.head", mlp).items()})
        kind, options = specs[ours]
        if kind == "image_patches":
            mapping[f"tokenizers.{ours}.position"] = f"transformer.wpe.{theirs}.wpe.weight"
        elif options["position"] == "index":
            mapping[f"tokenizers.{ours}.position.weight"] = f"transformer.wpe.{theirs}.wpe.weight"
        else:
            mapping.update({v: k for k, v in _mlp_keys(f"transformer.wpe.{theirs}", f"tokenizers.{ours}.position",
                                                       mlp).items()})
    layers = {"ln_1": "norm1", "attn.c_attn": "attn.qkv", "attn.c_proj": "attn.out", "ln_2": "norm2",
              "mlp.c_fc": "mlp.0", "mlp.c_proj": "mlp.2"}
    for i in range(int(checkpoint.model_args["n_layer"])):
        for theirs, ours in layers.items():
            for p in ("weight", "bias"):
                mapping[f"trunk.blocks.{i}.{ours}.{p}"] = f"transformer.h.{i}.{theirs}.{p}"
    for p in ("weight", "bias"):
        mapping[f"trunk.norm.{p}"] = f"transformer.ln_f.{p}"
    return mapping


def convert_astropt(checkpoint: AstroPTCheckpoint, *, image_size: int | None = None,
                    image_order: str | list[int] = "raster", standardize: bool = True,
                    names: Mapping[str, str] | None = None, embed_layer: int | str | None = None) -> ARModel:
    """An ``ARModel`` with the weights of an AstroPT checkpoint (see the module doc for the options)."""
    args = checkpoint.model_args
    if args["attn_type"] != "causal":
        raise ConfigError(f"only causal AstroPT models can be converted (attn_type {args['attn_type']!r})")
    if int(args.get("lora_r") or 0) > 0:
        raise ConfigError("the checkpoint has LoRA adapters; merge them into the weights before converting")
    names = {**DEFAULT_NAMES, **(names or {})}
    names = {m["name"]: names.get(m["name"], m["name"]) for m in checkpoint.modalities}
    specs = {names[m["name"]]: _tokenizer_spec(m, args, image_size, image_order, standardize)
             for m in checkpoint.modalities}
    config = {"model_type": "ar", "dim": int(args["n_embd"]), "depth": int(args["n_layer"]),
              "heads": int(args["n_head"]), "mlp_ratio": 4.0, "dropout": float(args["dropout"]),
              "gelu": "tanh", "embed_layer": embed_layer, "embed_reduction": "mean", "embed_normalize": False,
              "order": [names[m["name"]] for m in checkpoint.modalities],
              "modalities": {name: {"tokenizer": kind, "config": options} for name, (kind, options) in specs.items()}}
    model = ARModel.from_config(config)
    mapping = key_map(checkpoint, names, specs)
    state = {}
    for key, target in model.state_dict().items():
        source = mapping.get(key)
        if source is not None and source in checkpoint.state:
            value = checkpoint.state[source]
            state[key] = value[: target.shape[0]] if key.endswith(".position") else value
        elif key.endswith("bias") or key.endswith("modality_embedding"):  # AstroPT bias=False; no modality embedding
            state[key] = torch.zeros_like(target)
        else:
            raise DataFormatError(None, "AstroPT checkpoint lacks a weight the converted model needs", field=key,
                                  expected=source or "a mapped AstroPT weight", found="nothing")
    unused = sorted(set(checkpoint.state) - set(mapping.values()))
    if unused:
        log.warning("AstroPT weights not used by the converted model: %s", unused[:10])
    model.load_state_dict(state)
    return model.eval()


def load_astropt(path: str | Path, *, image_size: int | None = None, image_order: str | list[int] = "raster",
                 standardize: bool = True, names: Mapping[str, str] | None = None,
                 embed_layer: int | str | None = None) -> ARModel:
    """Read an AstroPT ``ckpt.pt`` safely and convert it to an ``ARModel`` (in eval mode)."""
    return convert_astropt(read_astropt_checkpoint(path), image_size=image_size, image_order=image_order,
                           standardize=standardize, names=names, embed_layer=embed_layer)
