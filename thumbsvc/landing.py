"""The development landing page: the bundled samples in several sizes and fits."""

from __future__ import annotations

import html
import os

from thumbsvc.config import Settings
from thumbsvc.options import make_options
from thumbsvc.signing import PathSigner
from thumbsvc.urls import build_payload

EXAMPLES = (
    {"width": 240, "height": 240, "fit": "cover"},
    {"width": 240, "height": 160, "fit": "contain"},
    {"width": 240, "height": 160, "fit": "pad", "background": "#20232a"},
    {"width": 240, "height": 120, "fit": "cover", "gravity": "smart", "format": "webp"},
)


def list_samples(root: str, limit: int = 12) -> list[str]:
    names = sorted(n for n in os.listdir(root) if n.lower().endswith((".jpg", ".jpeg", ".png", ".webp", ".gif")))
    return names[:limit]


def landing_page(signer: PathSigner, settings: Settings) -> str:
    """Return the HTML of the landing page; every URL on it is signed with the dev key."""
    root = settings.effective_media_root or ""
    rows = []
    for name in list_samples(root):
        cells = []
        for example in EXAMPLES:
            payload = build_payload(make_options(**example), name)  # type: ignore[arg-type]
            url = f"/{signer.sign(payload)}/{payload}"
            cells.append(
                f'<figure><img src="{html.escape(url)}" alt="{html.escape(name)}" loading="lazy">'
                f"<figcaption><code>{html.escape(url)}</code></figcaption></figure>"
            )
        rows.append(f"<section><h2>{html.escape(name)}</h2><div class=row>{''.join(cells)}</div></section>")
    return PAGE.format(rows="\n".join(rows))


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>thumbsvc</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
.row {{ display: flex; flex-wrap: wrap; gap: 1rem; }}
figure {{ margin: 0; max-width: 260px; }}
figcaption code {{ font-size: 0.7rem; word-break: break-all; color: #555; }}
img {{ background: #eee; display: block; }}
</style></head>
<body>
<h1>thumbsvc</h1>
<p>Development mode: a random per-process key signs the URLs below. Set <code>THUMBSVC_KEY</code> for production.</p>
{rows}
</body></html>
"""
