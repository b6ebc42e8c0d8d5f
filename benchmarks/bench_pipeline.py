"""Throughput of the input pipeline alone: decoded and augmented images/s or clips/s.

    python benchmarks/bench_pipeline.py --kind images --image-size 224 --workers 1
    python benchmarks/bench_pipeline.py --kind videos --image-size 224 --frames 16 --workers 2

Writes synthetic JPEGs (or H.264 mp4s with PyAV) of ``--source-size`` pixels into a temporary
folder (or reads ``--data``), then times full batches of ``ImageFolderDataset`` /
``VideoDataset`` (decode, random resized crop, normalisation, masks) with ``--workers``
threads per loader. Prints one JSON line with samples/s and per-worker samples/s, to
compare with the training step's samples/s (``bench_step.py``): the loader should feed
about 1.5x what the step consumes.
"""

import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def write_images(folder, count, size, rng):
    from PIL import Image

    os.makedirs(os.path.join(folder, "class0"), exist_ok=True)
    for i in range(count):
        pixels = (rng.random((size, size, 3)) * 255).astype("uint8")
        # Smooth content compresses like photos do; pure noise would be unrealistically slow.
        pixels = (pixels // 32 * 32).astype("uint8")
        Image.fromarray(pixels).save(os.path.join(folder, "class0", f"{i:05d}.jpg"),
                                     quality=90)


def write_videos(folder, count, size, frames, rng):
    import av

    os.makedirs(os.path.join(folder, "class0"), exist_ok=True)
    for i in range(count):
        path = os.path.join(folder, "class0", f"{i:04d}.mp4")
        with av.open(path, "w") as container:
            stream = container.add_stream("libx264", rate=30)
            stream.width, stream.height, stream.pix_fmt = size, size, "yuv420p"
            base = (rng.random((size, size, 3)) * 255).astype("uint8")
            for t in range(frames):
                image = (base + 3 * t).astype("uint8")
                for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=["images", "videos"], default="images")
    parser.add_argument("--data", default=None, help="a folder to read instead of synthetic")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--source-size", type=int, default=320)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--frame-step", type=int, default=4)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--count", type=int, default=96, help="synthetic files to write")
    args = parser.parse_args(argv)

    import numpy as np

    from keras_jepa.data import ImageFolderDataset, VideoDataset, image_transform
    from keras_jepa.data import video_transform
    from keras_jepa.masks import MultiBlockMask, MultiBlockMask3D

    rng = np.random.default_rng(0)
    folder = args.data
    if folder is None:
        folder = tempfile.mkdtemp(prefix="bench_pipeline_")
        if args.kind == "images":
            write_images(folder, args.count, args.source_size, rng)
        else:
            needed = args.frames * args.frame_step + 8
            write_videos(folder, max(args.count // 4, 8), args.source_size, needed, rng)
    grid = args.image_size // 16
    if args.kind == "images":
        dataset = ImageFolderDataset(
            folder, args.batch, image_size=args.image_size,
            transform=image_transform(args.image_size, scale=(0.3, 1.0)), labels=None,
            seed=0, mask_sampler=MultiBlockMask(grid_size=(grid, grid), seed=0,
                                                 min_keep=min(10, grid * grid // 4)),
            workers=args.workers)
    else:
        dataset = VideoDataset(
            folder, args.batch, frames_per_clip=args.frames, frame_step=args.frame_step,
            image_size=args.image_size,
            transform=video_transform(args.image_size, scale=(0.3, 1.0)), labels=None,
            seed=0, workers=args.workers,
            mask_sampler=MultiBlockMask3D(
                grid_size=(args.frames // 2, grid, grid),
                configs=[dict(spatial_scale=(0.15, 0.15), temporal_scale=(1.0, 1.0),
                              aspect_ratio=(0.75, 1.5), num_blocks=8)], seed=0))
    batches = min(args.batches, len(dataset))
    dataset[0]  # open files, warm caches
    start = time.perf_counter()
    for i in range(batches):
        dataset[i % len(dataset)]
    elapsed = time.perf_counter() - start
    rate = batches * args.batch / elapsed
    print(json.dumps({
        "kind": args.kind, "image_size": args.image_size, "source_size": args.source_size,
        "frames": args.frames if args.kind == "videos" else None, "batch": args.batch,
        "workers": args.workers, "samples_per_s": round(rate, 2),
        "samples_per_s_per_worker": round(rate / args.workers, 2),
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
