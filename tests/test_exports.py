from __future__ import annotations

import thumbsvc


def test_public_api() -> None:
    assert thumbsvc.__all__ == ["RenderOptions", "Settings", "URLSigner", "__version__", "create_app", "make_options"]
    for name in thumbsvc.__all__:
        assert getattr(thumbsvc, name) is not None
