"""thumbsvc: on-demand image thumbnails behind signed URLs.

``import thumbsvc`` stays light: the client names load at once, the server names
(Starlette, Pillow) only when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from thumbsvc.client import URLSigner
from thumbsvc.options import RenderOptions, make_options

if TYPE_CHECKING:
    from thumbsvc.app import create_app
    from thumbsvc.config import Settings

__all__ = ["RenderOptions", "Settings", "URLSigner", "__version__", "create_app", "make_options"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from thumbsvc.app import create_app

        return create_app
    if name == "Settings":
        from thumbsvc.config import Settings

        return Settings
    raise AttributeError(f"module 'thumbsvc' has no attribute {name!r}")
