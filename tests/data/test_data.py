"""Input pipeline: transforms, ImageFolderDataset and VideoDataset (fixtures made at test time).

The video tests need PyAV (``av``) and skip without it; the transform and image tests run
without."""

import math
import os
import pickle
import warnings

import keras
import numpy as np
import pytest
from PIL import Image

from keras_jepa import data
from keras_jepa.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CenterCrop,
    Compose,
    ImageFolderDataset,
    Normalize,
    RandomHorizontalFlip,
    RandomResizedCrop,
    ResizeShortSide,
    SpatialViews,
    VideoDataset,
    clip_indices,
    image_transform,
    read_video_csv,
    sample_crop_box,
    video_transform,
)
from keras_jepa.data.file_dataset import SkipSample

GREY_LEVELS = (10, 50, 90, 130, 170, 210, 250)  # one constant-colour image per level
FRAME_LEVEL = 8  # frame i of a test video has intensity 8 * i


# ----------------------------------------------------------------------------- fixtures


def _save_image(path, pixels):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(pixels).save(path)


def _av():
    """PyAV, or a skip of the calling test (only the video tests need it)."""
    return pytest.importorskip("av")


def _write_video(path, num_frames, size=32, rate=25):
    """An H.264 mp4 whose frame ``i`` is flat grey ``FRAME_LEVEL * i`` (decodable index)."""
    av = _av()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with av.open(path, "w") as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = size, size, "yuv420p"
        stream.codec_context.gop_size = 6  # several keyframes, so seeking is exercised
        for i in range(num_frames):
            frame = np.full((size, size, 3), FRAME_LEVEL * i, "uint8")
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode(None))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Image folders (PIL only)."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    paths = {}
    # Class folders (one nested one level deeper): 3 cats, 2 dogs, random 40x48 PNG/JPEG.
    classes = root / "classes"
    for name, count in (("dog", 2), ("cat", 3)):
        for i in range(count):
            sub = "nested" if i == 0 else ""
            ext = "jpg" if i == 1 else "png"
            _save_image(
                str(classes / name / sub / f"{i}.{ext}"),
                rng.integers(0, 256, (40, 48, 3), dtype=np.uint8),
            )
    paths["classes"] = str(classes)
    # A flat folder of constant-colour images: an image's identity survives any crop.
    flat = root / "flat"
    for level in GREY_LEVELS:
        _save_image(str(flat / f"grey{level:03d}.png"), np.full((40, 48, 3), level, "uint8"))
    paths["flat"] = str(flat)
    # The flat images plus a file that is not an image and a truncated PNG.
    broken = root / "broken"
    for level in GREY_LEVELS[:4]:
        _save_image(str(broken / f"grey{level:03d}.png"), np.full((40, 48, 3), level, "uint8"))
    (broken / "not_an_image.png").write_bytes(b"this is not a png" * 10)
    good = (broken / f"grey{GREY_LEVELS[0]:03d}.png").read_bytes()
    (broken / "truncated.png").write_bytes(good[: len(good) // 2])
    paths["broken"] = str(broken)
    return paths


@pytest.fixture(scope="module")
def video_files(tmp_path_factory):
    """Video folders (PyAV: the tests using them skip without it)."""
    _av()
    root = tmp_path_factory.mktemp("videos")
    paths = {}
    # Videos: 4 good ones (24 frames), a too-short one (5 frames), a corrupt one.
    videos = root / "videos"
    for i in range(4):
        _write_video(str(videos / ("a" if i < 2 else "b") / f"v{i}.mp4"), 24)
    paths["videos"] = str(videos)
    mixed = root / "mixed"
    for i in range(3):
        _write_video(str(mixed / f"good{i}.mp4"), 24)
    _write_video(str(mixed / "short.mp4"), 5)
    (mixed / "corrupt.mp4").write_bytes(os.urandom(4000))
    paths["mixed"] = str(mixed)
    return paths


def _level(image):
    """The grey level of a constant image after Normalize (undoes ImageNet stats)."""
    pixels = image * np.asarray(IMAGENET_STD) + np.asarray(IMAGENET_MEAN)
    return int(round(float(np.mean(pixels)) * 255))


# Raw pixel values as float32 (for checking which frames were decoded).
RAW = Normalize(mean=(0, 0, 0), std=(1, 1, 1), max_pixel_value=1)


def _frame_numbers(clip):
    """Frame indices of a RAW-normalised clip ``(T, H, W, 3)``."""
    return [int(round(float(np.mean(frame)) / FRAME_LEVEL)) for frame in clip]


# ----------------------------------------------------------------------------- transforms


def test_crop_boxes_follow_scale_and_ratio_bounds():
    rng = np.random.default_rng(0)
    height, width = 375, 500
    boxes = np.asarray(
        [sample_crop_box(height, width, (0.3, 1.0), (3 / 4, 4 / 3), rng) for _ in range(2000)]
    )
    top, left, h, w = boxes.T
    assert (top >= 0).all() and (left >= 0).all()
    assert (top + h <= height).all() and (left + w <= width).all()
    area = h * w / (height * width)
    # Rounding of each side moves the area by at most ~1 pixel row/column.
    assert area.min() >= 0.3 - 0.01 and area.max() <= 1.0
    aspect = w / h
    assert aspect.min() >= 3 / 4 - 0.02 and aspect.max() <= 4 / 3 + 0.02
    assert (aspect < 0.8).mean() > 0.05 and (aspect > 1.25).mean() > 0.05
    # Large draws that do not fit are redrawn, which lowers the mean area below 0.65.
    assert 0.5 < area.mean() < 0.65
    assert len({tuple(b) for b in boxes}) > 1900
    # On a square frame every small draw fits: the aspect is log-uniform (mean log 0,
    # uniform quartiles) and the area uniform.
    boxes = np.asarray(
        [sample_crop_box(400, 400, (0.3, 0.5), (3 / 4, 4 / 3), rng) for _ in range(4000)]
    )
    log_aspect = np.log(boxes[:, 3] / boxes[:, 2])
    assert abs(log_aspect.mean()) < 0.01
    quartiles = np.quantile(log_aspect, [0.25, 0.5, 0.75]) / math.log(4 / 3)
    np.testing.assert_allclose(quartiles, [-0.5, 0.0, 0.5], atol=0.05)
    area = boxes[:, 2] * boxes[:, 3] / 400**2
    np.testing.assert_allclose(np.quantile(area, [0.25, 0.5, 0.75]), [0.35, 0.4, 0.45], atol=0.01)


def test_crop_box_fallback_is_a_centre_crop():
    rng = np.random.default_rng(0)
    # No draw can fit (aspect 3-4 at >= 90 % of a square): the fallback clamps the aspect.
    assert sample_crop_box(40, 40, (0.9, 1.0), (3.0, 4.0), rng) == (13, 0, 13, 40)
    assert sample_crop_box(40, 40, (0.9, 1.0), (0.25, 0.3), rng) == (0, 14, 40, 12)
    # An input aspect inside the range: the whole frame.
    assert sample_crop_box(40, 60, (1.0, 1.0), (1.5, 1.5), rng) == (0, 0, 40, 60)


def test_random_resized_crop_matches_its_box():
    image = np.random.default_rng(1).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    crop = RandomResizedCrop((20, 24), interpolation="nearest")
    top, left, h, w = crop.get_params(40, 48, rng=np.random.default_rng(3))
    out = crop(image, rng=np.random.default_rng(3))
    expected = np.asarray(
        Image.fromarray(image[top : top + h, left : left + w]).resize(
            (24, 20), Image.Resampling.NEAREST
        )
    )
    assert out.shape == (20, 24, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected)
    # PIL input gives the same pixels and stays PIL.
    pil = crop(Image.fromarray(image), rng=np.random.default_rng(3))
    assert isinstance(pil, Image.Image)
    np.testing.assert_array_equal(np.asarray(pil), expected)


def test_video_crop_uses_the_same_box_on_every_frame():
    base = np.random.default_rng(2).uniform(0, 100, (40, 48, 3)).astype("float32")
    clip = base[None] + 10.0 * np.arange(6, dtype="float32")[:, None, None, None]
    crop = RandomResizedCrop(16, scale=(0.3, 0.5))
    for seed in range(5):
        out = crop(clip, rng=np.random.default_rng(seed))
        assert out.shape == (6, 16, 16, 3)
        # Bilinear resizing is linear: frame t - frame 0 is exactly the constant 10 t.
        for t in range(6):
            np.testing.assert_allclose(out[t] - out[0], 10.0 * t, atol=1e-3)
        # ...and frame 0 is the image crop with the same draw.
        single = crop(clip[0], rng=np.random.default_rng(seed))
        np.testing.assert_allclose(out[0], single, atol=1e-4)
    # A list of PIL frames gets the same box too.
    frames = [Image.fromarray(np.clip(f, 0, 255).astype("uint8")) for f in clip]
    boxes = {crop.get_params(40, 48, np.random.default_rng(7)) for _ in range(2)}
    assert len(boxes) == 1
    out = crop(frames, rng=np.random.default_rng(7))
    assert isinstance(out, list) and len(out) == 6 and out[0].size == (16, 16)


def test_horizontal_flip():
    image = np.arange(2 * 3 * 3, dtype="uint8").reshape(2, 3, 3)
    np.testing.assert_array_equal(RandomHorizontalFlip(1.0)(image), image[:, ::-1])
    np.testing.assert_array_equal(RandomHorizontalFlip(0.0)(image), image)
    pil = RandomHorizontalFlip(1.0)(Image.fromarray(image))
    np.testing.assert_array_equal(np.asarray(pil), image[:, ::-1])
    # About half the clips are flipped, and a clip is flipped as a whole.
    clip = np.stack([image, image + 100])
    flip = RandomHorizontalFlip(0.5, seed=0)
    flipped = 0
    for _ in range(400):
        out = flip(clip)
        whole = [np.array_equal(out[t], clip[t, :, ::-1]) for t in range(2)]
        same = [np.array_equal(out[t], clip[t]) for t in range(2)]
        assert all(whole) or all(same)
        flipped += all(whole)
    assert abs(flipped - 200) < 4 * math.sqrt(400 * 0.25)
    with pytest.raises(ValueError, match="1.5"):
        RandomHorizontalFlip(1.5)


def test_normalize_values():
    pixels = np.asarray([[[0, 0, 0], [255, 255, 255], [124, 116, 104]]], dtype="uint8")
    out = Normalize()(pixels)
    assert out.dtype == np.float32 and out.shape == (1, 3, 3)
    mean, std = np.asarray(IMAGENET_MEAN), np.asarray(IMAGENET_STD)
    np.testing.assert_allclose(out[0, 0], -mean / std, rtol=1e-6)
    np.testing.assert_allclose(out[0, 1], (1 - mean) / std, rtol=1e-6)
    np.testing.assert_allclose(out[0, 2], (pixels[0, 2] / 255 - mean) / std, atol=1e-6)
    # PIL images and lists of frames become arrays; custom statistics.
    assert Normalize()(Image.fromarray(pixels)).shape == (1, 3, 3)
    custom = Normalize(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    np.testing.assert_allclose(custom([Image.fromarray(pixels)] * 2)[1, 0, 1], [1, 1, 1])
    with pytest.raises(ValueError, match="4 channels"):
        Normalize()(np.zeros((2, 2, 4), "uint8"))
    with pytest.raises(ValueError, match="std must be positive"):
        Normalize(std=(0.2, 0.0, 0.2))


def test_eval_image_transform_resizes_short_side_then_centre_crops():
    image = np.random.default_rng(0).integers(0, 256, (375, 500, 3), dtype=np.uint8)
    assert ResizeShortSide(256).output_size(375, 500) == (256, 341)
    assert ResizeShortSide(30)(image[:40, :48]).shape == (30, 36, 3)
    assert ResizeShortSide(30)(np.zeros((48, 40, 3), "uint8")).shape == (36, 30, 3)
    out = image_transform(224, training=False)(image)
    resized = np.asarray(Image.fromarray(image).resize((341, 256), Image.Resampling.BILINEAR))
    # torchvision's centre crop: top = round((256 - 224) / 2) = 16, left = round(58.5) = 58.
    expected = Normalize()(resized[16:240, 58:282])
    np.testing.assert_allclose(out, expected, atol=1e-6)
    with pytest.raises(ValueError, match="does not fit"):
        CenterCrop(64)(np.zeros((40, 48, 3), "uint8"))


def test_eval_video_three_spatial_views():
    clip = np.random.default_rng(0).integers(0, 256, (2, 32, 48, 3), dtype=np.uint8)
    views = SpatialViews(32, num_views=3)(clip)
    assert views.shape == (3, 2, 32, 32, 3)
    for v, left in enumerate((0, 8, 16)):  # step (48 - 32) // 2 = 8 along the long side
        np.testing.assert_array_equal(views[v], clip[:, :, left : left + 32])
    portrait = np.swapaxes(clip, 1, 2)
    assert SpatialViews(32).offsets(48, 32) == [(0, 0), (8, 0), (16, 0)]
    np.testing.assert_array_equal(SpatialViews(32)(portrait)[2], portrait[:, 16:48])
    with pytest.raises(ValueError, match="ResizeShortSide"):
        SpatialViews(24)(clip)
    # The full recipe: short side to 224, 3 views, normalised.
    big = np.zeros((4, 240, 320, 3), "uint8")
    out = video_transform(224, training=False, num_views=3)(big)
    assert out.shape == (3, 4, 224, 224, 3) and out.dtype == np.float32
    single = video_transform(224, training=False)(big)
    assert single.shape == (4, 224, 224, 3)


def test_train_transforms_recipes_and_seeding():
    image = np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    transform = image_transform(32, seed=3)
    out = transform(image)
    assert out.shape == (32, 32, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(image_transform(32, seed=3)(image), out)
    assert not np.array_equal(transform(image), out)  # its own generator moves on
    np.testing.assert_array_equal(
        transform(image, rng=np.random.default_rng(1)),
        image_transform(32, seed=9)(image, rng=np.random.default_rng(1)),
    )
    vt = video_transform(16)
    crop, flip = vt.transforms[0], vt.transforms[1]
    assert crop.scale == (0.3, 1.0) and crop.ratio == (0.75, 1.35)
    assert isinstance(flip, RandomHorizontalFlip)
    assert not any(isinstance(t, RandomHorizontalFlip) for t in image_transform().transforms)
    # Picklable (worker processes), and a pickled copy continues identically.
    copy = pickle.loads(pickle.dumps(transform))
    np.testing.assert_array_equal(copy(image), transform(image))


def test_transform_argument_errors_name_the_value():
    with pytest.raises(ValueError, match=r"\(0.5, 0.2\)"):
        RandomResizedCrop(32, scale=(0.5, 0.2))
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        RandomResizedCrop(32, ratio=(0, 1))
    with pytest.raises(ValueError, match="1.5"):
        RandomResizedCrop(32, scale=(0.5, 1.5))
    with pytest.raises(ValueError, match="'lanczos'"):
        RandomResizedCrop(32, interpolation="lanczos")
    with pytest.raises(ValueError, match=r"\(32, 32, 3\)"):
        RandomResizedCrop((32, 32, 3))
    with pytest.raises(ValueError, match=r"\(5, 5\)"):
        RandomResizedCrop(4)(np.zeros((5, 5), "uint8"))
    with pytest.raises(TypeError, match="callables"):
        Compose([3])


# ----------------------------------------------------------------------------- images


def test_image_folder_labels_and_static_batches(files):
    ds = ImageFolderDataset(files["classes"], batch_size=2, image_size=24, seed=0)
    assert ds.class_names == ["cat", "dog"]
    assert len(ds.paths) == 5 and len(ds) == 2
    names = [os.path.relpath(p, files["classes"]) for p in ds.paths]
    assert names[0] == os.path.join("cat", "1.jpg")
    assert os.path.join("cat", "nested", "0.png") in names
    expected = {p: int(os.path.relpath(p, files["classes"]).startswith("dog")) for p in ds.paths}
    seen = []
    for i in range(len(ds)):
        batch = ds[i]
        assert set(batch) == {"images", "labels"}
        assert batch["images"].shape == (2, 24, 24, 3) and batch["images"].dtype == np.float32
        assert batch["labels"].dtype == np.int32
        order = ds.order()[2 * i : 2 * i + 2]
        assert batch["labels"].tolist() == [expected[ds.paths[j]] for j in order]
        seen += order.tolist()
    assert len(set(seen)) == 4  # drop_remainder drops 1 of the 5
    ds = ImageFolderDataset(files["classes"], 2, 24, drop_remainder=False, labels=None)
    assert len(ds) == 3 and ds[2]["images"].shape == (1, 24, 24, 3) and "labels" not in ds[2]
    with pytest.raises(IndexError):
        ds[3]


def test_image_folder_epochs_cover_every_image_once_and_reshuffle(files):
    ds = ImageFolderDataset(
        files["flat"], batch_size=3, image_size=16, seed=4, drop_remainder=False
    )
    assert ds.labels is None and ds.class_names is None
    orders = []
    for epoch in range(3):
        levels = [_level(img) for i in range(len(ds)) for img in ds[i]["images"]]
        assert sorted(levels) == list(GREY_LEVELS)
        orders.append(levels)
        ds.on_epoch_end()
    assert len({tuple(o) for o in orders}) == 3
    unshuffled = ImageFolderDataset(files["flat"], 7, 16, shuffle=False)
    assert [_level(img) for img in unshuffled[0]["images"]] == list(GREY_LEVELS)


def test_image_folder_is_deterministic_by_seed(files):
    def make(seed):
        transform = image_transform(16, flip=True)
        return ImageFolderDataset(files["classes"], 2, transform=transform, seed=seed)

    a, b, c = make(7), make(7), make(8)
    second = a[1]["images"]  # asked out of order: batches do not depend on call order
    np.testing.assert_array_equal(a[0]["images"], b[0]["images"])
    np.testing.assert_array_equal(second, b[1]["images"])
    assert not np.array_equal(a[0]["images"], c[0]["images"])
    # A pickled copy (what a worker process gets) makes the same batches, per epoch.
    a.set_epoch(3)
    copy = pickle.loads(pickle.dumps(a))
    assert copy.epoch == 3
    np.testing.assert_array_equal(copy[0]["images"], a[0]["images"])
    assert not np.array_equal(a[0]["images"], b[0]["images"])
    b.set_epoch(3)
    np.testing.assert_array_equal(a[0]["images"], b[0]["images"])


def test_mask_sampler_is_merged_with_the_global_step(files):
    calls = []

    def sampler(batch_size, step):
        calls.append((batch_size, step))
        return {
            "context_indices": np.full((batch_size, 3), step, "int32"),
            "target_indices": [np.full((batch_size, 2), step, "int32")] * 2,
        }

    ds = ImageFolderDataset(files["flat"], 3, 16, seed=0, mask_sampler=sampler)
    assert len(ds) == 2
    steps = []
    for _ in range(2):
        for i in range(len(ds)):
            batch = ds[i]
            assert set(batch) == {"images", "context_indices", "target_indices"}
            assert batch["context_indices"].shape == (3, 3)
            assert len(batch["target_indices"]) == 2
            steps.append(int(batch["context_indices"][0, 0]))
        ds.on_epoch_end()
    assert steps == [0, 1, 2, 3] and calls == [(3, s) for s in steps]
    ds.set_epoch(5)
    assert int(ds[1]["context_indices"][0, 0]) == 11
    clash = ImageFolderDataset(files["flat"], 3, 16, mask_sampler=lambda b, s: {"images": 0})
    with pytest.raises(ValueError, match="images"):
        clash[0]
    wrong = ImageFolderDataset(files["flat"], 3, 16, mask_sampler=lambda b, s: [1])
    with pytest.raises(TypeError, match="list"):
        wrong[0]


def test_unreadable_images_are_skipped_and_counted(files):
    ds = ImageFolderDataset(files["broken"], batch_size=3, image_size=16, seed=1)
    assert len(ds.paths) == 6 and len(ds) == 2
    with pytest.warns(RuntimeWarning, match="unreadable"):
        batches = [ds[i] for i in range(len(ds))]
    for batch in batches:
        assert batch["images"].shape == (3, 16, 16, 3)
        assert np.isfinite(batch["images"]).all()
    assert ds.skipped == {"unreadable": 2} and ds.num_skipped == 2
    assert sorted(os.path.basename(p) for p, _ in ds.skipped_files) == [
        "not_an_image.png",
        "truncated.png",
    ]
    levels = {_level(img) for batch in batches for img in batch["images"]}
    assert levels <= set(GREY_LEVELS[:4])
    # Another epoch: the bad files are known, counted once, not warned about again.
    ds.on_epoch_end()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds[0], ds[1]
    assert ds.skipped == {"unreadable": 2}
    # The counts travel with a pickled copy.
    assert pickle.loads(pickle.dumps(ds)).skipped == {"unreadable": 2}


def test_image_folder_argument_errors(files, tmp_path):
    with pytest.raises(ValueError, match="batch_size=9"):
        ImageFolderDataset(files["flat"], batch_size=9)
    with pytest.raises(ValueError, match="No files"):
        ImageFolderDataset(str(tmp_path), batch_size=1)
    _save_image(str(tmp_path / "loose.png"), np.zeros((4, 4, 3), "uint8"))
    _save_image(str(tmp_path / "cls" / "x.png"), np.zeros((4, 4, 3), "uint8"))
    with pytest.raises(ValueError, match="loose.png"):
        ImageFolderDataset(str(tmp_path), batch_size=1)
    assert len(ImageFolderDataset(str(tmp_path), 1, 8, labels=None).paths) == 2
    with pytest.raises(ValueError, match="shape"):
        ImageFolderDataset([str(tmp_path / "loose.png")], 1, labels=[0, 1])
    explicit = ImageFolderDataset([str(tmp_path / "loose.png")] * 2, 2, 8, labels=[3, 4])
    assert sorted(explicit[0]["labels"].tolist()) == [3, 4]
    mixed_sizes = ImageFolderDataset(str(tmp_path), 2, labels=None, transform=Normalize())
    _save_image(str(tmp_path / "cls" / "x.png"), np.zeros((5, 4, 3), "uint8"))
    with pytest.raises(ValueError, match="fixed output size"):
        mixed_sizes[0]


def test_keras_predict_with_thread_workers(files):
    class MeanModel(keras.Model):
        def call(self, inputs):
            return keras.ops.mean(inputs["images"], axis=(1, 2, 3))

    ds = ImageFolderDataset(files["flat"], 2, 16, seed=0, shuffle=False, workers=2)
    expected = np.concatenate([ds[i]["images"].mean(axis=(1, 2, 3)) for i in range(len(ds))])
    model = MeanModel()
    model(ds[0])  # built: Keras would otherwise peek at (and replay) a batch
    out = model.predict(ds, verbose=0)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    assert ds.epoch == 1  # predict ran one epoch


def test_fit_sees_the_epochs_and_steps_of_the_epoch_callback(files):
    steps = []

    def sampler(batch_size, step):
        steps.append(step)
        return {"step": np.full((batch_size,), step, "int32")}

    class TinyModel(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(1)

        def call(self, inputs):
            return self.dense(keras.ops.mean(inputs["images"], axis=(1, 2)))

        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, **kwargs):
            return keras.ops.mean(keras.ops.square(y_pred))

    ds = ImageFolderDataset(files["flat"], 3, 8, seed=0, mask_sampler=sampler)
    model = TinyModel()
    model.compile(optimizer="sgd")
    model(ds[0])
    steps.clear()
    model.fit(ds, epochs=4, initial_epoch=2, callbacks=[ds.epoch_callback()], verbose=0)
    # Epochs 2 and 3 of 2 batches (TensorFlow first reads 2 batches to infer the spec).
    assert steps[-4:] == [4, 5, 6, 7]
    assert ds.epoch == 4


# ----------------------------------------------------------------------------- video


def test_clip_indices_rules():
    rng = np.random.default_rng(0)
    # Official spacing: floor(linspace(start, start + window, T)), clipped to the window.
    assert clip_indices(64, 16, 4, random_start=False).tolist() == [
        [0, 4, 8, 12, 17, 21, 25, 29, 34, 38, 42, 46, 51, 55, 59, 63]
    ]
    starts = set()
    for _ in range(200):
        idx = clip_indices(30, 4, 2, rng=rng)[0]
        assert (idx - idx[0]).tolist() == [0, 2, 5, 7]
        starts.add(int(idx[0]))
    # Official: the end is uniform in [window, frames), so the last window is never drawn.
    assert starts == set(range(0, 30 - 8))
    assert clip_indices(8, 4, 2, rng=rng).tolist() == [[0, 2, 5, 7]]
    assert clip_indices(30, 4, 2, exact_stride=True, random_start=False).tolist() == [
        [0, 2, 4, 6]
    ]
    two = clip_indices(40, 4, 2, num_clips=2, random_start=False)
    assert two.tolist() == [[0, 2, 5, 7], [20, 22, 25, 27]]
    with pytest.raises(SkipSample, match="too_short"):
        clip_indices(7, 4, 2)
    assert clip_indices(5, 4, 2, short_videos="pad").tolist() == [[0, 4, 4, 4]]


def test_video_batches_decode_the_right_frames(video_files):
    ds = VideoDataset(
        video_files["videos"], 2, frames_per_clip=4, frame_step=2, transform=RAW,
        random_clip_start=False, seed=0,
    )  # fmt: skip
    assert ds.class_names == ["a", "b"] and len(ds) == 2
    for i in range(len(ds)):
        batch = ds[i]
        assert batch["videos"].shape == (2, 4, 32, 32, 3)
        folders = [os.path.basename(os.path.dirname(ds.paths[j])) for j in ds.order()[2 * i :][:2]]
        assert batch["labels"].tolist() == [int(folder == "b") for folder in folders]
        for clip in batch["videos"]:
            assert _frame_numbers(clip) == [0, 2, 5, 7]
    # Random starts (decoded after a seek) keep the spacing, vary, and are seeded.
    ds = VideoDataset(video_files["videos"], 4, frames_per_clip=4, frame_step=2, transform=RAW,
                      seed=1)
    firsts = []
    for epoch in range(3):
        ds.set_epoch(epoch)
        for clip in ds[0]["videos"]:
            numbers = _frame_numbers(clip)
            assert [n - numbers[0] for n in numbers] == [0, 2, 5, 7]
            assert 0 <= numbers[0] < 24 - 8
            firsts.append(numbers[0])
    assert len(set(firsts)) > 3
    again = VideoDataset(video_files["videos"], 4, frames_per_clip=4, frame_step=2,
                         transform=RAW, seed=1)
    again.set_epoch(2)
    np.testing.assert_array_equal(again[0]["videos"], ds[0]["videos"])


def test_video_reader_seeks_and_decodes_only_up_to_the_last_needed_frame(video_files):
    class CountingContainer:
        """Delegates to a PyAV container and counts the frames it decodes."""

        def __init__(self, container):
            self.container, self.decoded = container, 0

        def __getattr__(self, name):
            return getattr(self.container, name)

        def decode(self, *args):
            for frame in self.container.decode(*args):
                self.decoded += 1
                yield frame

    path = os.path.join(video_files["videos"], "a", "v0.mp4")
    with _av().open(path) as container:
        counting = CountingContainer(container)
        reader = data.VideoReader(counting)
        assert reader.num_frames == 24
        frames = reader.frames([17, 19, 17])
        assert sorted(frames) == [17, 19]
        assert [round(np.asarray(frames[i]).mean() / FRAME_LEVEL) for i in (17, 19)] == [17, 19]
        # Keyframes every 6 frames: the seek lands on frame 12, so 8 frames are decoded
        # (a few more if the decoder delays output), not the 20 from the start.
        assert counting.decoded <= 11
        counting.decoded = 0
        assert sorted(reader.frames([0, 2])) == [0, 2] and counting.decoded == 3


def test_video_default_transform_multiple_clips_and_views(video_files):
    ds = VideoDataset(video_files["videos"], 2, frames_per_clip=4, frame_step=2, image_size=16,
                      seed=0)
    batch = ds[0]
    assert batch["videos"].shape == (2, 4, 16, 16, 3) and batch["videos"].dtype == np.float32
    raw = VideoDataset(
        video_files["videos"], 2, frames_per_clip=4, frame_step=2, num_clips=2, transform=RAW,
        random_clip_start=False, seed=0,
    )  # fmt: skip
    clips = raw[0]["videos"]
    assert clips.shape == (2, 2, 4, 32, 32, 3)
    assert [_frame_numbers(c) for c in clips[0]] == [[0, 2, 5, 7], [12, 14, 17, 19]]
    views = VideoDataset(
        video_files["videos"], 2, frames_per_clip=4, frame_step=2,
        transform=video_transform(32, training=False, num_views=3), seed=0,
    )  # fmt: skip
    assert views[0]["videos"].shape == (2, 3, 4, 32, 32, 3)


def test_corrupt_and_short_videos_are_skipped_and_counted(video_files):
    ds = VideoDataset(video_files["mixed"], 2, frames_per_clip=4, frame_step=2, transform=RAW,
                      seed=0)
    assert len(ds.paths) == 5 and ds.labels is None
    with pytest.warns(RuntimeWarning) as record:
        batches = [ds[i] for i in range(len(ds))]
    messages = " ".join(str(w.message) for w in record)
    assert "corrupt.mp4" in messages and "short.mp4" in messages
    for batch in batches:
        assert batch["videos"].shape == (2, 4, 32, 32, 3)
        for clip in batch["videos"]:
            numbers = _frame_numbers(clip)
            assert [n - numbers[0] for n in numbers] == [0, 2, 5, 7]
    assert ds.skipped == {"unreadable": 1, "too_short": 1}
    assert dict((os.path.basename(p), r) for p, r in ds.skipped_files) == {
        "corrupt.mp4": "unreadable",
        "short.mp4": "too_short",
    }
    # Official behaviour on request: pad short videos with their last frame.
    pad = VideoDataset(
        [os.path.join(video_files["mixed"], "short.mp4")], 1, frames_per_clip=4, frame_step=2,
        transform=RAW, short_videos="pad",
    )  # fmt: skip
    assert _frame_numbers(pad[0]["videos"][0]) == [0, 4, 4, 4]
    assert pad.skipped == {"unreadable": 0, "too_short": 0}


def test_video_csv_with_labels(video_files, tmp_path):
    videos = sorted(
        os.path.relpath(os.path.join(folder, name), video_files["videos"])
        for folder, _, names in os.walk(video_files["videos"])
        for name in names
    )
    csv = os.path.join(video_files["videos"], "index.csv")
    with open(csv, "w") as f:
        f.write("".join(f"{v} {i + 10}\n" for i, v in enumerate(videos)))
        f.write(f"{os.path.join(video_files['mixed'], 'corrupt.mp4')} 99\n")
    paths, labels = read_video_csv(csv)
    assert labels.tolist() == [10, 11, 12, 13, 99] and os.path.isfile(paths[0])
    ds = VideoDataset(csv, 5, frames_per_clip=4, frame_step=2, image_size=16, seed=0)
    with pytest.warns(RuntimeWarning, match="corrupt.mp4"):
        batch = ds[0]
    assert batch["videos"].shape == (5, 4, 16, 16, 3)
    # The corrupt video (label 99) is replaced by another one, with that one's label.
    assert 99 not in batch["labels"].tolist()
    assert set(batch["labels"].tolist()) <= {10, 11, 12, 13}
    bad = tmp_path / "bad.csv"
    bad.write_text("a.mp4 1\nb.mp4\n")
    with pytest.raises(ValueError, match="bad.csv:2"):
        read_video_csv(str(bad))
    with pytest.raises(ValueError, match="frame_step"):
        VideoDataset(csv, 1, frame_step=0)
    with pytest.raises(ValueError, match="nowhere"):
        VideoDataset(str(tmp_path / "nowhere"), 1)
