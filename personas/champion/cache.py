"""The last champion a machine loaded, on disk, so a process that starts while MLflow is down
labels with it instead of falling back to the vendor centroids."""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

from personas.errors import InvalidModel
from personas.model import BOOTSTRAP_VERSION, CentroidModel

__all__ = ["ModelCache"]

log = logging.getLogger(__name__)


class ModelCache:
    """``<directory>/<model_name>.json`` (``CentroidModel.to_dict``); one file per model name, so
    two services or two models never read each other's champion."""

    def __init__(self, directory: Path, model_name: str) -> None:
        self.path = directory / f"{model_name}.json"

    def save(self, model: CentroidModel) -> None:
        """Write atomically (write + rename, a temp name per process and thread) so concurrent
        workers never leave a half-written file. The vendor model is always at hand: not cached.
        A full or read-only disk is logged, never raised: the swap it follows already happened."""
        if model.version == BOOTSTRAP_VERSION:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_text(json.dumps(model.to_dict()))
            tmp.replace(self.path)
        except OSError as exc:
            log.warning("could not cache model version %s at %s: %s", model.version, self.path, exc)

    def load(self) -> CentroidModel | None:
        """The cached model, None if there is none or it is unreadable (then it is ignored)."""
        try:
            return CentroidModel.from_dict(json.loads(self.path.read_text()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, InvalidModel) as exc:
            log.warning("ignoring unreadable model cache %s: %s", self.path, exc)
            return None
