"""In-memory caching of preprocessed samples for small datasets trained for many epochs.

A sample transform is split into its deterministic part (per modality, the transforms before the
first one that draws from the generator: random augmentations, and e.g. ``LengthCap``'s random subset)
and the rest. :class:`CachedSource` reads each block once, applies the deterministic part and keeps
the result; every epoch runs the rest. Use it with ``num_workers=0`` (each loader worker would hold
its own copy).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from astrofm.data.dataset import BlockRef
from astrofm.data.modalities import Sample
from astrofm.data.sources import BlockSource
from astrofm.data.transforms import Compose, SampleTransform


def split_random(transform: SampleTransform) -> tuple[SampleTransform, SampleTransform]:
    """(prefix that uses no generator, remainder) of every modality's pipeline."""
    fixed, rest = {}, {}
    for name, pipeline in transform.pipelines.items():
        steps = pipeline.transforms
        cut = next((i for i, t in enumerate(steps) if t.uses_rng), len(steps))
        fixed[name], rest[name] = Compose(steps[:cut]), Compose(steps[cut:])
    return SampleTransform(fixed), SampleTransform({k: v for k, v in rest.items() if v.transforms})


class CachedSource:
    """A block source whose blocks are read and preprocessed once, then served from memory."""

    def __init__(self, source: BlockSource, transform: SampleTransform) -> None:
        self.source = source
        self.transform = transform
        self.name = source.name
        self._blocks: dict[BlockRef, list[Sample]] = {}

    def __len__(self) -> int:
        return len(self.source)  # type: ignore[arg-type]

    def blocks(self, block_size: int) -> list[BlockRef]:
        return self.source.blocks(block_size)

    def _block(self, ref: BlockRef) -> list[Sample]:
        if ref not in self._blocks:
            self._blocks[ref] = [self.transform(s) for s in self.source.iter_block(ref)]
        return self._blocks[ref]

    def iter_block(self, ref: BlockRef, start: int = 0) -> Iterator[Sample]:
        yield from self._block(ref)[start:]

    def read_block_rows(self, ref: BlockRef, rows: Sequence[int]) -> list[Sample]:
        block = self._block(ref)
        return [block[r] for r in rows]
