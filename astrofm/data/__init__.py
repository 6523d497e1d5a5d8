"""The data layer: MMU shards -> samples -> padded, masked batches.

``data`` knows nothing of models. Heavy imports happen on first use.
"""

from astrofm.data.dataset import BlockRef, Catalog, MMUDataset, write_dataset
from astrofm.data.modalities import ARRAY_MODALITIES, DataModality, Sample, TabularModality, register_modality
from astrofm.data.schema import SCHEMAS, FieldSpec, ModalitySchema
from astrofm.data.shard import Shard, write_shard

__all__ = [
    "ARRAY_MODALITIES",
    "SCHEMAS",
    "BlockRef",
    "Catalog",
    "DataModality",
    "FieldSpec",
    "MMUDataset",
    "ModalitySchema",
    "Sample",
    "Shard",
    "TabularModality",
    "register_modality",
    "write_dataset",
    "write_shard",
]
