"""Packaging beyond pyproject.toml: conf/ stays at the repository's top level and ships inside the wheel as
the package data of `representation_probe.conf` (presets.CONF finds it there when installed)."""

from setuptools import find_namespace_packages, setup

setup(
    packages=[*find_namespace_packages(include=["representation_probe", "representation_probe.*", "hydra_plugins.*"],
                                       exclude=["*.__pycache__"]), "representation_probe.conf"],
    package_dir={"representation_probe.conf": "conf"},
    package_data={"representation_probe.conf": ["**/*.yaml"]},
)
