"""Build the compiled core. Every ``fastgw/_core/*.pyx`` becomes an extension module.

The core is required: a build without Cython or a C compiler fails instead of
producing a pure-Python wheel.
"""
import glob
import os

from Cython.Build import cythonize
from setuptools import Extension, setup

extensions = [
    Extension(
        "fastgw._core." + os.path.splitext(os.path.basename(path))[0],
        [path],
        extra_compile_args=["-O3"],
    )
    for path in sorted(glob.glob(os.path.join("fastgw", "_core", "*.pyx")))
]

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True},
    ),
)
