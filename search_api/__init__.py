"""The REST API of epipe (FastAPI): search, annotations, file metadata, pipeline status.

`create_app(settings)` builds the application; importing this package does nothing else.
"""

from search_api.app import create_app

__all__ = ["create_app"]
