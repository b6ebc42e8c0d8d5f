"""Datasets, transforms and synthetic data (numpy; they run in the input pipeline)."""

from keras_jepa.data.embedded import load_digits
from keras_jepa.data.file_dataset import EpochCallback, FileDataset, SkipSample, scan_folder
from keras_jepa.data.image_folder import IMAGE_EXTENSIONS, ImageFolderDataset
from keras_jepa.data.procedural import (
    StepGrammar,
    StepSequences,
    embed_clips,
    extract_clip_embeddings,
    make_procedural_digits,
    read_step_annotations,
    save_embedding_cache,
)
from keras_jepa.data.iwm_views import (
    ACTION_DIM,
    ACTION_NAMES,
    PairedViewDataset,
    PairedViews,
    action_vector,
    color_jitter,
    gaussian_blur,
)
from keras_jepa.data.image_text import (
    ImageCaptionArrays,
    ImageTextDataset,
    flatten_captions,
    make_caption_scenes,
    read_captions_file,
)
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
from keras_jepa.data.spurious import (
    COLOR_MNIST_VARIANTS,
    IndexedBatches,
    load_feature_arrays,
    load_images,
    make_color_digits,
    make_spurious_features,
    read_group_metadata,
    save_feature_arrays,
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
from keras_jepa.data.intuitive_physics import (
    iter_grasp,
    iter_inflevel,
    iter_intphys,
    load_voe_pairs,
    read_video_frames,
)
