"""The build hook that compiles epipe's C extension (epipe/source/_tuples.c): into the wheel,
and in place for an editable install (`make install`). setuptools only drives the compiler."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

EXTENSION = "epipe.source._tuples"
SOURCE = "epipe/source/_tuples.c"


class CompiledExtension(BuildHookInterface):  # type: ignore[type-arg]
    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return  # an sdist ships the C source
        root = Path(self.root)
        try:
            built = _compile(root)
        except Exception as exc:  # no compiler or headers: epipe runs the Python parse
            self.app.display_warning(
                f"epipe: could not compile {SOURCE} ({exc}); the tailer will parse in "
                "Python (slower). Install a C compiler and the Python headers to build it."
            )
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        if version != "editable":
            build_data["force_include"][str(built)] = str(built.relative_to(root))


def _compile(root: Path) -> Path:
    from setuptools import Distribution, Extension
    from setuptools.command.build_ext import build_ext

    here = Path.cwd()
    with tempfile.TemporaryDirectory() as scratch:
        os.chdir(root)  # build_ext places an in-place build relative to the cwd
        try:
            dist = Distribution({"ext_modules": [Extension(EXTENSION, [SOURCE])]})
            command = build_ext(dist)
            command.inplace = True
            command.build_temp = scratch
            command.ensure_finalized()
            command.run()
            return Path(command.get_ext_fullpath(EXTENSION)).resolve()
        finally:
            os.chdir(here)
