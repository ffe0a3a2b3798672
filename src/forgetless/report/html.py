"""Self-contained HTML: inline CSS, plots embedded as base64 PNG — opens from disk, no server,
no network. Small helpers; pages are assembled by the run report and by `forgetless compare`."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

CSS = """
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1100px;
color:#1d1d1f;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid
#ddd;padding-bottom:.2rem}.sub{color:#666;margin-top:0}
table{border-collapse:collapse;margin:.6rem 0;font-variant-numeric:tabular-nums}
th,td{border:1px solid #ddd;padding:.25rem .55rem;text-align:right}th{background:#f5f5f7}
td:first-child,th:first-child{text-align:left}img{max-width:100%;height:auto}
.headline{display:flex;gap:1rem;flex-wrap:wrap}.card{border:1px solid #ddd;border-radius:8px;
padding:.5rem 1rem;min-width:7rem}.card b{display:block;font-size:1.5rem}.note{color:#555}
nav a{margin-right:.8rem}
"""


def esc(text: object) -> str:
    return html.escape(str(text))


def figure_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def img(png: bytes | Path, alt: str) -> str:
    data = png.read_bytes() if isinstance(png, Path) else png
    return (f'<img alt="{esc(alt)}" src="data:image/png;base64,'
            f'{base64.b64encode(data).decode()}">')


def table(header: list[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def cards(items: list[tuple[str, str]]) -> str:
    return '<div class="headline">' + "".join(
        f'<div class="card"><b>{esc(v)}</b>{esc(k)}</div>' for k, v in items) + "</div>"


def section(anchor: str, title: str, body: str) -> tuple[str, str, str]:
    return anchor, title, body


def page(title: str, subtitle: str, sections: list[tuple[str, str, str]]) -> str:
    nav = "".join(f'<a href="#{a}">{esc(t)}</a>' for a, t, _ in sections)
    parts = "".join(f'<section id="{a}"><h2>{esc(t)}</h2>{body}</section>'
                    for a, t, body in sections)
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)}'
            f'</title><style>{CSS}</style></head><body><h1>{esc(title)}</h1>'
            f'<p class="sub">{esc(subtitle)}</p><nav>{nav}</nav>{parts}</body></html>')
