"""sitegate-cloud: ingest, store, billing and the HTTP API (the ``cloud`` extra)."""

def cloud_missing() -> str | None:
    """The first package of the ``cloud`` extra that is not installed (a gateway box)."""
    import importlib.util

    for module in ("sqlalchemy", "alembic", "fastapi", "fastapi_offline", "uvicorn", "qrbill",
                   "fpdf"):
        if importlib.util.find_spec(module) is None:
            return module
    return None
