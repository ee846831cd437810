"""Package discovery for setuptools (everything else is in pyproject.toml).

Every package under hf_pretrain_ext/ is found, and kernels/ with all its subpackages is shipped as
hf_pretrain_ext.kernels (pyproject's package-dir maps the name; subpackages follow the mapping). There is never a
top-level `kernels` package: that name belongs to the Hugging Face `kernels` package that transformers probes for.
A static list left kernels/ops out of the wheel once; tests/test_wheel.py builds the wheel and imports every module.
"""
from setuptools import find_packages, setup

PACKAGES = (find_packages(include=["hf_pretrain_ext", "hf_pretrain_ext.*"])
            + ["hf_pretrain_ext.kernels"]
            + [f"hf_pretrain_ext.kernels.{name}" for name in find_packages("kernels")])

setup(packages=PACKAGES)
