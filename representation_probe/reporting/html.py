"""The report page's building blocks: where its files go, and the HTML of sections, figures and tables."""

from __future__ import annotations

import html
from pathlib import Path

from representation_probe.runs.rundir import write_atomic

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
.muted { color: #777; } figure { margin: 1em 0; } figure img { max-width: 100%; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 13px; }
th, td { padding: 3px 8px; border-bottom: 1px solid #eee; text-align: right; }
th { background: #f6f6f6; } td.text, th.text { text-align: left; }
table.grid td { text-align: center; vertical-align: top; border: none; padding: 4px; }
table.grid img { width: 112px; height: 112px; image-rendering: pixelated; border: 1px solid #ccc; }
table.grid .caption { font-size: 11px; color: #555; }
.good { color: #1a7f37; } .bad { color: #c62828; } .failed td { background: #fff0f0; }
"""


class Page:
    """report.html in `out`, its images in `out/report_files/` (copied, so the report stays valid when
    the runs move); links are relative to `out`."""

    def __init__(self, out: Path):
        self.out, self.files = out, out / "report_files"

    def figure(self, name: str, png: bytes, caption: str = "") -> str:
        write_atomic(self.files / name, png)
        cap = f"<figcaption class='muted'>{html.escape(caption)}</figcaption>" if caption else ""
        return f"<figure><img src='{self.rel(self.files / name)}' alt='{html.escape(name)}'>{cap}</figure>"

    def copy(self, src: Path) -> str:
        """A run's PNG copied into report_files/; its link, or '' when the run has no such file."""
        if not src.is_file():
            return ""
        name = "img_" + "_".join(src.relative_to(src.anchor).parts[-5:]).replace("/", "_")
        write_atomic(self.files / name, src.read_bytes())
        return self.rel(self.files / name)

    def image_cell(self, src: Path, caption: str = "") -> str:
        """A grid cell: the image (copied) over its caption (HTML)."""
        link = self.copy(src)
        img = f"<img src='{link}' alt=''>" if link else "<span class='muted'>missing</span>"
        return f"<td>{img}<div class='caption'>{caption}</div></td>"

    def rel(self, path: Path) -> str:
        try:
            return str(path.resolve().relative_to(self.out.resolve()))
        except ValueError:
            return str(path)


def section(title: str, body: str) -> str:
    return f"<h2>{html.escape(title)}</h2>{body}"


def fmt(value) -> str:
    return "—" if value is None else f"{value:.3g}" if isinstance(value, float) else html.escape(str(value))


def table(headers: list[str], rows: list[list], text_columns: int = 1, row_class=None) -> str:
    head = "".join(f"<th class='{'text' if i < text_columns else ''}'>{html.escape(h)}</th>"
                   for i, h in enumerate(headers))
    body = "".join(
        f"<tr class='{row_class(i) if row_class else ''}'>"
        + "".join(f"<td class='{'text' if j < text_columns else ''}'>{fmt(v)}</td>" for j, v in enumerate(row))
        + "</tr>" for i, row in enumerate(rows))
    return f"<table><tr>{head}</tr>{body}</table>"


def grid(header: list[str], rows: list[list[str]]) -> str:
    """An image grid: a header row, then rows of cells (the first a label, the others `image_cell`s)."""
    head = "".join(f"<th>{html.escape(name)}</th>" for name in header)
    body = "".join(f"<tr>{''.join(cells)}</tr>" for cells in rows)
    return f"<table class='grid'><tr>{head}</tr>{body}</table>"


def label_cell(label: str) -> str:
    return f"<td class='text'><b>{html.escape(label)}</b></td>"
