"""Models: which exist (registry), the GGUF conversion cache, loading, and export.

Submodules are imported directly (``from tunesmith.models.loading import load_model``) so that
resolving a name does not import torch: ``config`` and ``registry`` stay light; ``loading``,
``gguf`` conversions and ``export`` import transformers when they run.
"""
