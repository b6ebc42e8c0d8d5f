"""Mask samplers for JEPA pretraining (numpy; they run in the data pipeline).

Every sampler is called as ``sampler(batch_size, step=None)`` and returns
``{"context_indices": (int32 (B, Kc), ...), "target_indices": (int32 (B, Kt), ...)}`` (tuples): flat
row-major token indices, sorted within each row, with shapes that depend only on the sampler's
configuration (so a jitted train step compiles once). A batch is a pure function of
``(seed, step)``; ``state`` / ``set_state`` save and restore the step counter, and samplers
pickle for worker processes.

- ``MultiBlockMask``: I-JEPA (2-D grid).
- ``MultiBlockMask3D``: V-JEPA and V-JEPA 2 (``(T, H, W)`` grid, one mask pair per config).
- ``RandomTubeMask``: V-JEPA's random tubes.
"""

from keras_jepa.masks.base import MaskSampler, first_occurrence_mask
from keras_jepa.masks.multiblock import MultiBlockMask
from keras_jepa.masks.multiblock3d import MultiBlockMask3D
from keras_jepa.masks.random_tube import RandomTubeMask

__all__ = [
    "MaskSampler",
    "MultiBlockMask",
    "MultiBlockMask3D",
    "RandomTubeMask",
    "first_occurrence_mask",
]
