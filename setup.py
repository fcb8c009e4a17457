"""Builds the compiled core (shardbroker/core/*.pyx) with Cython; everything else is in
pyproject.toml."""

from Cython.Build import cythonize
from setuptools import Extension, setup

setup(
    ext_modules=cythonize(
        [
            Extension("shardbroker.core._plans", ["shardbroker/core/_plans.pyx"]),
            Extension("shardbroker.core._publoop", ["shardbroker/core/_publoop.pyx"]),
            Extension("shardbroker.core._meshloop", ["shardbroker/core/_meshloop.pyx"]),
            Extension("shardbroker.core._storeloop", ["shardbroker/core/_storeloop.pyx"]),
            Extension("shardbroker.core._budget", ["shardbroker/core/_budget.pyx"]),
            Extension("shardbroker.core._wsmask", ["shardbroker/core/_wsmask.pyx"]),
        ],
        compiler_directives={"language_level": 3},
    )
)
