"""Build hook: compile the per-message hot path with mypyc, or ship it pure.

The engine, channels, views and codecs are mypy-strict, so mypyc (through hatch-mypyc, as black
ships) compiles them to C extensions that sit beside their sources. The package stays pure
Python when ``WSCHANNELS_PURE=1`` is set or when compiling fails (no compiler, no headers, an
unsupported interpreter): the build then says why and goes on. ``_native.json`` records a hash
of every source it compiled, so that at import time an edited source wins over a stale build
(see ``wschannels/_native.py``).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

PACKAGE = Path("src/wschannels")
# The per-message path: the engine and what it calls. (The server adapters subclass their
# servers' own classes, which mypyc compiles as Python classes: picows' segfaulted.)
COMPILED = ("channels", "codecs", "engine", "views")
RECORD = "_native.json"


class CompileHotPath(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        self.clean([version])
        if os.environ.get("WSCHANNELS_PURE") == "1":
            self.app.display_info("wschannels: WSCHANNELS_PURE=1, building pure Python")
            return
        try:
            self._compiler().initialize(version, build_data)
        except Exception as error:  # a missing compiler fails in many ways; all mean "pure"
            self.clean([version])
            first_lines = "\n".join(str(error).splitlines()[:20])
            self.app.display_warning(
                f"wschannels: compiling with mypyc failed, building pure Python:\n{first_lines}"
            )
            return
        if version == "editable":
            # The modules' shared library is beside the sources, on the path the editable
            # install adds: a second copy in site-packages would shadow the next rebuild.
            for source in [s for s in build_data["force_include"] if "__mypyc." in s]:
                del build_data["force_include"][source]
        sources = {
            "wschannels." + name.replace("/", "."): _digest(Path(self.root, PACKAGE, f"{name}.py"))
            for name in COMPILED
        }
        record = Path(self.root, PACKAGE, RECORD)
        record.write_text(json.dumps({"python": sys.implementation.cache_tag, "sources": sources}))
        build_data["artifacts"].append(f"/{PACKAGE / RECORD}")

    def clean(self, versions: list[str]) -> None:
        """Remove what an earlier build left beside the sources, so no stale module is loaded."""
        root = Path(self.root)
        stale = [*root.joinpath(PACKAGE.parent).glob("*__mypyc.*")]
        for name in COMPILED:
            stale += [p for p in root.joinpath(PACKAGE).glob(f"{name}.*") if p.suffix != ".py"]
        for path in [*stale, root / PACKAGE / RECORD]:
            path.unlink(missing_ok=True)

    def _compiler(self) -> Any:
        from hatch_mypyc.plugin import MypycBuildHook

        config = {
            "include": [f"{PACKAGE}/{name}.py" for name in COMPILED],
            # mypy strictness is checked by `make lint`; here mypyc only needs the types.
            "mypy-args": ["--ignore-missing-imports"],
            "options": {"opt_level": "3", "debug_level": "0"},
        }
        return MypycBuildHook(
            self.root,
            config,
            self.build_config,
            self.metadata,
            self.directory,
            self.target_name,
            self.app,
        )


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def get_build_hook() -> type[BuildHookInterface]:  # type: ignore[type-arg]
    return CompileHotPath
