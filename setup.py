"""The package list, computed so that a new module cannot be left out of the wheel.

Everything else is in pyproject.toml. setuptools' own discovery (``[tool.setuptools.packages.find]``)
finds only folders under ``sketchrnn/``; the top-level folders that the wheel maps into the package
(the server as ``sketchrnn.server``, the browser page as ``sketchrnn.client``, the default model as
``sketchrnn.models``) are added here, each with whatever subpackages it grows.
"""

from setuptools import find_packages, setup

MAPPED = {"sketchrnn.server": "server", "sketchrnn.client": "client", "sketchrnn.models": "data/models"}

packages = find_packages(include=["sketchrnn", "sketchrnn.*"])
for package, folder in MAPPED.items():
    packages += [package] + [f"{package}.{sub}" for sub in find_packages(where=folder)]

setup(packages=packages, package_dir=MAPPED)
