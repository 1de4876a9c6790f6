"""Package layout (everything else is in pyproject.toml): the library's own packages, found
automatically so a new subpackage cannot be left out of an install, plus the repository's top-level
experiments/ and benchmarks/, installed inside the library as dlmodels.experiments and
dlmodels.benchmarks so that nothing generic-named lands in site-packages."""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["dlmodels", "dlmodels.*"])
    + ["dlmodels.experiments", "dlmodels.benchmarks"],
    package_dir={"dlmodels.experiments": "experiments", "dlmodels.benchmarks": "benchmarks"},
)
