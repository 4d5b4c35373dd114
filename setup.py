"""Install deltaface: four top-level packages and the ``deltaface`` command."""

from __future__ import annotations

import re
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).resolve().parent
VERSION = re.search(
    r'^__version__ = "([^"]+)"', (HERE / "plugin" / "version.py").read_text(), re.M
).group(1)

setup(
    name="deltaface",
    version=VERSION,
    description="Repair and edit faces in video after a face swap, with temporally smoothed deltas.",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.11,<3.12",
    packages=["plugin", "tracking", "synthesis", "compositing"],
    package_data={
        "plugin": ["py.typed", "data/*.png", "data/*.txt", "dfl_scripts/*.sh", "dfl_scripts/*.bat"],
        "tracking": ["py.typed", "models/*.task", "models/*.txt"],
        "synthesis": ["py.typed", "data/*"],
        "compositing": ["py.typed"],
    },
    include_package_data=True,
    # Pinned together: these resolve on a CPU-only machine without pulling CUDA wheels
    # (see shared/FACTS.md). Only the contrib build of OpenCV: never also opencv-python.
    install_requires=[
        "torch==2.13.0",
        "av==18.1.0",
        "mediapipe==1.2.3",
        "kornia==0.9.0",
        "opencv-contrib-python==5.1.0.95",
        "scipy==1.17.1",
        "numpy==2.4.6",
        # Editor timelines (markers, clip ranges) and CMX 3600 EDLs through its adapter.
        "opentimelineio==0.18.1",
        "otio-cmx3600-adapter==1.0.0",
    ],
    extras_require={
        "test": ["pytest>=8", "hypothesis>=6"],
    },
    entry_points={"console_scripts": ["deltaface = plugin.__main__:main"]},
    license="Apache-2.0",
    classifiers=["Programming Language :: Python :: 3.11"],
)
