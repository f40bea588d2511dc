"""Package layout beyond pyproject.toml: the binary-addition example folder is
installed as ``recaffe.examples.binary_addition`` (one copy of its files)."""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["recaffe*"]) + ["recaffe.examples.binary_addition"],
    package_dir={"recaffe.examples.binary_addition": "examples/binary_addition"},
    package_data={
        "recaffe": ["proto/*.proto"],
        "recaffe.examples.binary_addition": ["*.prototxt", "README.md"],
    },
)
