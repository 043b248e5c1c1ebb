"""Build hook: compiles the optional native batch reader (``policydsl/_fastread.c``) into the wheel.

Where no C compiler is found the build goes on without it: the wheel is then pure Python and
``batch_read`` reads every household with its msgspec tier (same results, slower on big registers).
Set ``POLICYDSL_NO_NATIVE=1`` to build without it on purpose.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class NativeReaderHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or os.environ.get("POLICYDSL_NO_NATIVE"):
            return
        self.work = tempfile.mkdtemp(prefix="policydsl-native-")
        try:
            built = self._compile(Path(self.work))
        except Exception as exc:  # any failure to compile means: build without it
            self.app.display_warning(f"policydsl: the native batch reader was not built ({exc}); "
                                     "batches are read by the msgspec reader instead (same results, slower)")
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        if version == "editable":  # the editable install imports from the source tree
            shutil.copy2(built, Path(self.root) / "policydsl" / built.name)
        else:
            build_data["force_include"][str(built)] = f"policydsl/{built.name}"

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        if getattr(self, "work", None):
            shutil.rmtree(self.work, ignore_errors=True)

    def _compile(self, work: Path) -> Path:
        from setuptools import Distribution, Extension
        from setuptools.command.build_ext import build_ext

        source = str(Path(self.root) / "policydsl" / "_fastread.c")
        extension = Extension("policydsl._fastread", sources=[source])
        command = build_ext(Distribution({"name": "policydsl", "ext_modules": [extension]}))
        command.build_lib = str(work / "lib")
        command.build_temp = str(work / "temp")
        command.ensure_finalized()
        command.run()
        return Path(command.get_ext_fullpath(extension.name))
