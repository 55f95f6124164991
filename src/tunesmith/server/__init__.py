"""The OpenAI-compatible HTTP API (FastAPI): ``create_app(settings)`` in ``app.py``.

``routes/`` holds one router per resource, ``deps.py`` the shared dependencies, ``errors.py``
the table mapping exceptions to OpenAI's error envelope, ``schemas.py`` the bodies,
``mapping.py`` the job request -> ``FinetuneSpec`` mapping, ``uploads.py`` streaming uploads.
It calls the jobs layer, which calls the engine.
"""
