"""`clipseek serve`: an HTTP API and a web page over one gallery. `create_app` builds the app;
`serve` runs it under uvicorn. Importing this package imports FastAPI (not torch)."""

from clipseek.server.app import create_app, exposure_warning, serve

__all__ = ["create_app", "exposure_warning", "serve"]
