"""Packaging hook: ship the top-level kernels/ and presets/ inside the wheel.

The sources live at the repository top level (kernels are C++/CUDA, presets are TOML);
a non-editable install copies them into the package as ``meshopt_cli/_kernels`` and
``meshopt_cli/_presets`` so that the JIT build and the preset loader find them.
"""

import pathlib
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = pathlib.Path(__file__).parent


class BuildPyWithData(build_py):
    def run(self):
        super().run()
        for source, target_name in (("kernels", "_kernels"), ("presets", "_presets")):
            target = pathlib.Path(self.build_lib) / "meshopt_cli" / target_name
            if target.exists():
                shutil.rmtree(target)
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, target)


setup(cmdclass={"build_py": BuildPyWithData})
