"""Datasets, transforms and synthetic data (numpy; they run in the input pipeline)."""

from keras_jepa.data.digits import load_digits
from keras_jepa.data.file_dataset import EpochCallback, FileDataset, SkipSample, scan_folder
from keras_jepa.data.image_folder import IMAGE_EXTENSIONS, ImageFolderDataset
from keras_jepa.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CenterCrop,
    Compose,
    Normalize,
    RandomHorizontalFlip,
    RandomResizedCrop,
    ResizeShortSide,
    SpatialViews,
    image_transform,
    sample_crop_box,
    video_transform,
)
from keras_jepa.data.video import (
    VIDEO_EXTENSIONS,
    VideoDataset,
    VideoReader,
    clip_indices,
    read_video_csv,
)
from keras_jepa.data.physics_videos import (
    PROPERTIES as PHYSICS_PROPERTIES,
    make_quadruplet,
    make_scene,
    make_training_videos,
    make_voe_dataset,
    physics_violations,
    write_video,
    write_voe_dataset,
)
