"""Loading a MODEL spec and weights for the CLI.

MODEL is `path/to/file.py:factory`, `package.module:factory`, or a torch.export `.pt2` file.
A `.py` MODEL is Python code that the user chooses to run, exactly like `python file.py`:
only point it at code you trust. Weights are never unpickled: a state_dict is read with
`torch.load(weights_only=True)`, or from a safetensors file.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import pickle
import re
import sys
import zipfile
from pathlib import Path

import torch

from rnnedge.errors import ModelSpecError


def load_model(spec: str, weights: str | None = None) -> torch.nn.Module:
    model = _load_pt2(Path(spec)) if spec.endswith(".pt2") else _call_factory(spec)
    if weights:
        load_weights(model, Path(weights))
    return model


def _load_pt2(path: Path) -> torch.nn.Module:
    if not path.is_file():
        raise ModelSpecError(f"{path}: no such file")
    quiet = logging.getLogger("torch.export")  # it logs its own traceback before raising
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        return torch.export.load(str(path)).module()
    except Exception as e:  # torch raises assorted errors on a bad archive
        raise ModelSpecError(f"{path}: not a torch.export .pt2 archive ({_first_line(e)})") from e
    finally:
        quiet.setLevel(level)


def _call_factory(spec: str) -> torch.nn.Module:
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr:
        raise ModelSpecError(
            f"MODEL {spec!r}: expected path/to/file.py:factory, package.module:factory or file.pt2"
        )
    module = _import(target)
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ModelSpecError(f"MODEL {spec!r}: {target} has no callable {attr!r}")
    try:
        model = factory()
    except Exception as e:  # the user's factory: report what it raised, in one line
        raise ModelSpecError(f"MODEL {spec!r}: {attr}() raised {type(e).__name__}: {e}") from e
    if not isinstance(model, torch.nn.Module):
        raise ModelSpecError(
            f"MODEL {spec!r}: {attr}() returned {type(model).__name__}, not an nn.Module"
        )
    return model


def _import(target: str):
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_file():
            raise ModelSpecError(f"MODEL file {path} does not exist")
        name = f"rnnedge_user_model_{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ModelSpecError(f"MODEL file {path} cannot be imported")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as e:
            raise ModelSpecError(
                f"MODEL file {path}: importing it raised {type(e).__name__}: {e}"
            ) from e
        return module
    try:
        return importlib.import_module(target)
    except ImportError as e:
        raise ModelSpecError(f"MODEL module {target!r} cannot be imported: {e}") from e


def load_weights(model: torch.nn.Module, path: Path) -> None:
    if not path.is_file():
        raise ModelSpecError(f"weights file {path} does not exist")
    if _is_npz(path):  # torch.load would say "[enforce fail at inline_container.cc:180]"
        raise ModelSpecError(
            f"weights file {path} is a numpy .npz archive, not a state_dict: save the weights "
            "with torch.save(model.state_dict(), 'w.pt') or as .safetensors"
        )
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:  # weights_only=True met something that is not a tensor
        raise ModelSpecError(
            f"weights file {path} cannot be read safely: it holds Python objects besides "
            "tensors, and unpickling them could run code"
        ) from e
    except Exception as e:  # corrupt zip, truncated file, bad safetensors header, ...
        raise ModelSpecError(f"weights file {path} cannot be read safely: {_first_line(e)}") from e
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelSpecError(f"weights file {path} is not a state_dict of tensors")
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches
        raise ModelSpecError(
            f"weights file {path} does not fit the model: {str(e).splitlines()[-1].strip()}"
        ) from e
    if result.missing_keys or result.unexpected_keys:
        raise ModelSpecError(
            f"weights file {path} does not fit the model: missing {result.missing_keys[:5]}, "
            f"unexpected {result.unexpected_keys[:5]}"
        )


def _is_npz(path: Path) -> bool:
    """A zip of .npy members only (np.savez); a torch checkpoint is a zip holding data.pkl."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return bool(names) and all(n.endswith(".npy") for n in names)


def _first_line(e: Exception) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip()  # torch colours some messages
    return text.splitlines()[0].strip() if text else type(e).__name__
