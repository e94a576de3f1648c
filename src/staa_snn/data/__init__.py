"""Datasets, event-to-frame integration and augmentation.

:func:`get_dataset` is the entry point (``list_datasets()`` for the names);
:func:`read_events` reads any event recording (AEDAT 2/3.1/4, Prophesee .dat/.raw, N-MNIST .bin,
NumPy); the readers and :func:`events_to_frames` are usable on their own.
Formats: ``docs/data.md``.
"""

from .aedat import read_aedat2, read_aedat3
from ..errors import CorruptFileError, DataError
from .dvs import CIFAR10DVS, DVSGesture, layout_only, read_gesture_labels
from .eventsets import NMNIST, EventFolder, TonicEvents, read_for_net, recording_to_frames
from .events import SPLIT_MODES, events_to_frames, frame_indices
from .mix import MixupCutmix
from .recordings import EVENT_DTYPE, FORMATS, MissingExtraError, Recording, detect_format, read_events
from .registry import (DatasetInfo, ImageRecipe, check_dataset_options, dataset_info, get_dataset, list_datasets,
                       normalization, resolve_recipe)
from .transforms import NORMALIZATION, Cutout, RandomFlipFrames, RandomRollFrames

__all__ = [
    "CIFAR10DVS", "CorruptFileError", "Cutout", "DVSGesture", "DataError", "DatasetInfo", "EVENT_DTYPE", "EventFolder",
    "FORMATS", "ImageRecipe", "MissingExtraError", "MixupCutmix", "NMNIST", "Recording", "TonicEvents", "detect_format",
    "read_events", "read_for_net", "recording_to_frames",
    "NORMALIZATION", "RandomFlipFrames", "RandomRollFrames", "SPLIT_MODES", "check_dataset_options", "dataset_info",
    "events_to_frames", "frame_indices", "get_dataset", "layout_only", "list_datasets", "normalization", "read_aedat2",
    "read_aedat3", "read_gesture_labels", "resolve_recipe",
]
