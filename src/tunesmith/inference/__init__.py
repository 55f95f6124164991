"""Using a model: generation with OpenAI semantics, class probabilities, and a model cache.

* ``generation``: ``GenerationParams``, ``generate_chat`` / ``generate_completion`` /
  ``generate_batch`` / ``generate_from_ids``, ``stream_chat`` / ``stream_completion``.
* ``streaming``: the threaded token stream behind ``stream_*`` (``StreamChunk``).
* ``classification``: ``classify`` -> ``{label: probability}`` per text.
* ``cache``: ``ModelCache``, one base model in memory serving all its LoRA fine-tunes.
* ``batching`` (the queue), ``batch_generation`` and ``continuous``: the server's concurrent
  requests for one model decoded together, rows joining and leaving between steps.

Nothing is imported here, so ``import tunesmith.inference`` does not load torch.
"""
