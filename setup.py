"""Packaging for keras_jepa.

Backends are extras so a user installs only the engine they run on. Pins that matter:
- ``torch==2.13.0`` exactly: a looser specifier resolves to a multi-GB CUDA build on Linux,
  while 2.13.0 is the CPU wheel the CI machines carry.
- ``jax==0.10.2``: the newest release for Python 3.11 (0.11 needs Python 3.12).
- ``tensorflow-cpu``: the full ``tensorflow`` package is only needed by the ``hub`` extra
  (keras-hub pulls tensorflow-text, which requires it). Do not combine ``hub`` with
  ``tensorflow``: both packages write the same folder.
"""

import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def read_version():
    scope = {}
    with open(os.path.join(HERE, "keras_jepa", "version.py")) as f:
        exec(f.read(), scope)
    return scope["__version__"]


def read_long_description():
    with open(os.path.join(HERE, "README.md"), encoding="utf-8") as f:
        return f.read()


EXTRAS = {
    "jax": ["jax==0.10.2", "jaxlib==0.10.2"],
    "torch": ["torch==2.13.0"],
    "tensorflow": ["tensorflow-cpu>=2.21,<2.22"],
    "video": ["av>=12"],
    "hub": ["keras-hub>=0.32", "tensorflow>=2.21,<2.22"],
    "test": ["pytest>=8", "av>=12", "matplotlib>=3.8", "transformers>=5"],
}
EXTRAS["all"] = sorted(
    {req for name, reqs in EXTRAS.items() if name != "hub" for req in reqs}
)

setup(
    name="keras-jepa",
    version=read_version(),
    description=(
        "Latent-prediction self-supervised learning (I-JEPA, V-JEPA, V-JEPA 2 and "
        "relatives) for Keras 3 on JAX, PyTorch and TensorFlow."
    ),
    long_description=read_long_description(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["keras_jepa", "keras_jepa.*"]),
    include_package_data=True,
    install_requires=[
        "keras>=3.15.1,<3.17",
        "numpy>=1.26",
        "h5py>=3.10",
        "scikit-learn>=1.3",
        "pillow>=9",
        "matplotlib>=3.8",
        "pyyaml>=6",  # official training configs as conversion architectures
    ],
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["keras-jepa=keras_jepa.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Intended Audience :: Science/Research",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
