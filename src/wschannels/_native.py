"""Which build of the hot path runs: mypyc's compiled modules, or their Python sources.

The build (``hatch_build.py``) compiles ``channels``, ``codecs``, ``engine`` and ``views`` into
extension modules beside their sources and records each source's hash in ``_native.json``.
CPython imports an extension before a source of the same name, so the sources are loaded
instead, by a finder placed first on ``sys.meta_path``, when

- ``WSCHANNELS_PURE=1`` is set (to debug, profile or compare with the pure package), or
- a source no longer matches the hash it was compiled from (it was edited since the build).

Both builds are one code base and pass one test suite; only speed differs.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

_PACKAGE = Path(__file__).parent
_RECORD = _PACKAGE / "_native.json"


class _SourceFinder(importlib.abc.MetaPathFinder):
    """Loads the compiled modules from their ``.py`` sources."""

    def __init__(self, modules: Sequence[str]) -> None:
        self.modules = frozenset(modules)

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.modules:
            return None
        return importlib.util.spec_from_file_location(fullname, _source_of(fullname))


def _compiled_sources() -> dict[str, str]:
    """The modules the build compiled for this interpreter, with their sources' hashes."""
    try:
        record = json.loads(_RECORD.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(record, dict) or record.get("python") != sys.implementation.cache_tag:
        return {}
    sources = record.get("sources")
    return sources if isinstance(sources, dict) else {}


def _source_of(module: str) -> Path:
    """``wschannels.servers.picows`` -> its ``.py`` file in this package."""
    return _PACKAGE.joinpath(*module.split(".")[1:]).with_suffix(".py")


def _is_current(module: str, digest: str) -> bool:
    try:
        return hashlib.sha256(_source_of(module).read_bytes()).hexdigest() == digest
    except OSError:  # a wheel installed without sources: the build is all there is
        return True


def _prefer_sources_if_stale() -> None:
    """Place the source finder first when the build must not run (done once, on import)."""
    sources = _compiled_sources()
    if sources and (
        os.environ.get("WSCHANNELS_PURE") == "1"
        or not all(_is_current(module, digest) for module, digest in sources.items())
    ):
        sys.meta_path.insert(0, _SourceFinder(list(sources)))


def is_compiled(module: ModuleType) -> bool:
    """Whether ``module`` was loaded from an extension, not from its source."""
    return (module.__file__ or "").endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


_prefer_sources_if_stale()
