"""rnnedge.export: PyTorch model -> bundle (needs torch).

ARCHITECTURE.md names both a subpackage `rnnedge.export` and a function
`rnnedge.export(model, example, out=...)`. Python binds a subpackage to its parent's attribute
on import, which would shadow a function of the same name, so this module itself is callable:
calling it runs `export_bundle` (export/pipeline.py). torch is imported on the first call.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from typing import Any


class _CallableModule(types.ModuleType):
    def __call__(self, model: Any, example: Any, out: Any, **kwargs: Any) -> Any:
        if importlib.util.find_spec("torch") is None:  # a board install: say which extra
            from rnnedge.errors import MissingDependencyError

            raise MissingDependencyError(
                "rnnedge.export needs PyTorch, which is not installed here: "
                "pip install 'rnnedge[export]'"
            )
        from rnnedge.export.pipeline import export_bundle

        return export_bundle(model, example, out, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
