"""The web console (operators, owners, installers) and the tenant portal: server-rendered
pages from the cloud's FastAPI app, mounted at ``/web`` (``app.create_web``)."""
