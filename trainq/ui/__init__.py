"""The web page (``/ui``), served by ``trainq api``: its pages, scripts, styles and the
vendored chart library, all from the package (no CDN)."""
