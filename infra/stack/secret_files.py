"""Generated passwords of the cluster profile: one file per secret, mode 0600, in a 0700 folder of
the ignored stack folder. Made at first use, never printed, never put on a command line."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = ["SecretFiles"]


class SecretFiles:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, name: str) -> Path:
        return self.folder / f"{name}.password"

    def get(self, name: str) -> str:
        """The secret called ``name``, generated (URL-safe, 192 bits) the first time."""
        path = self.path(name)
        if not path.exists():
            self.folder.mkdir(parents=True, exist_ok=True)
            os.chmod(self.folder, 0o700)
            # O_EXCL: two concurrent first starts cannot hand out two different passwords.
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "w") as fh:
                    fh.write(secrets.token_urlsafe(24) + "\n")
        return path.read_text().strip()
