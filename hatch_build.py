"""The build hook that compiles epipe's C extensions (EXTENSIONS): into the wheel, and in
place for an editable install (`make install`). setuptools only drives the compiler."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

# module -> source; each is the compiled twin of a Python definition, which runs without it
EXTENSIONS = {
    "epipe.source._tuples": "epipe/source/_tuples.c",  # the tailer's tuple parse
    "epipe.index.tantivy._plain": "epipe/index/tantivy/_plain.c",  # documents as JSON text
}


class CompiledExtension(BuildHookInterface):  # type: ignore[type-arg]
    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return  # an sdist ships the C source
        root = Path(self.root)
        try:
            built = _compile(root)
        except Exception as exc:  # no compiler or headers: epipe runs the Python definitions
            self.app.display_warning(
                f"epipe: could not compile {', '.join(EXTENSIONS.values())} ({exc}); epipe "
                "will run their Python definitions (slower). Install a C compiler and the "
                "Python headers to build them."
            )
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        if version != "editable":
            for path in built:
                build_data["force_include"][str(path)] = str(path.relative_to(root))


def _compile(root: Path) -> list[Path]:
    from setuptools import Distribution, Extension
    from setuptools.command.build_ext import build_ext

    here = Path.cwd()
    with tempfile.TemporaryDirectory() as scratch:
        os.chdir(root)  # build_ext places an in-place build relative to the cwd
        try:
            modules = [Extension(name, [source]) for name, source in EXTENSIONS.items()]
            dist = Distribution({"ext_modules": modules})
            command = build_ext(dist)
            command.inplace = True
            command.build_temp = scratch
            command.ensure_finalized()
            command.run()
            return [Path(command.get_ext_fullpath(name)).resolve() for name in EXTENSIONS]
        finally:
            os.chdir(here)
