"""How the report page refers to a media file: a relative link, or (``--embed``) a ``data:`` URL within a budget.

Relative links are relative to the folder of the HTML file, so the page works from ``file://`` and from any web
server that serves the run folder, and keeps working when the run folder is moved or copied with it.  With
``embed`` on, files are inlined as base64 ``data:`` URLs in page order as long as the total stays within the cap
(``--max-embed-mb``); a file that would pass it is linked instead, and the page says how many were
(:meth:`Linker.summary`).
Base64 makes an embedded file about 4/3 of its size in the page; the cap counts the files' own bytes.
"""
from __future__ import annotations

import base64
import mimetypes
import os
from pathlib import Path
from urllib.parse import quote

MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp", ".gif": "image/gif",
        ".mp4": "video/mp4", ".webm": "video/webm"}
DEFAULT_MAX_EMBED_MB = 64.0


class Linker:
    def __init__(self, page_dir: Path, *, embed: bool = False, max_embed_mb: float = DEFAULT_MAX_EMBED_MB):
        self.page_dir = Path(page_dir).resolve()
        self.embed = embed
        self.budget = int(max_embed_mb * 1_000_000)
        self.embedded_bytes = 0
        self.embedded: set[Path] = set()
        self.linked: set[Path] = set()
        self.over_cap: set[Path] = set()

    def relative(self, path: Path) -> str:
        rel = os.path.relpath(Path(path).resolve(), self.page_dir)
        return quote(Path(rel).as_posix())

    def url(self, path: Path) -> str:
        path = Path(path).resolve()
        if self.embed:
            size = path.stat().st_size
            if path in self.embedded or self.embedded_bytes + size <= self.budget:
                if path not in self.embedded:
                    self.embedded.add(path)
                    self.embedded_bytes += size
                mime = MIME.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"
            self.over_cap.add(path)
        self.linked.add(path)
        return self.relative(path)

    def summary(self) -> str:
        """One sentence on how media are referenced (shown at the top of the page)."""
        if not self.embed:
            return (f"Media are linked relative to this file ({len(self.linked)} files); keep it next to the run folder's "
                    f"artifacts/ and report_assets/.")
        text = f"{len(self.embedded)} media files ({self.embedded_bytes / 1e6:.1f} MB) are embedded in this page"
        if self.over_cap:
            text += (f"; {len(self.over_cap)} more would exceed the --max-embed-mb cap of {self.budget / 1e6:g} MB and are "
                     f"linked relative to this file instead")
        return text + "."
