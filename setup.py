"""The one thing pyproject.toml cannot say: the optional C extension guardian._rest (the loop
at rest, guardian/_rest.c). optional=True: without a compiler or Python's headers the install
goes on, and the daemon runs the same loop in Python."""
from setuptools import Extension, setup

setup(ext_modules=[Extension("guardian._rest", ["guardian/_rest.c"], optional=True,
                             extra_compile_args=["-O2", "-Wall", "-Wextra", "-fno-math-errno"])])
