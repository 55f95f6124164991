"""Measuring a model on held-out data, alone or against a baseline.

* ``evaluate``: ``evaluate(model, data, ...) -> EvaluationReport``.
* ``metrics``: ``classification_metrics``, ``label_metrics``, ``lm_metrics``, ``exact_match``.
* ``scoring``: teacher-forced loss (training's masks and loss) and reading answers as labels.
* ``report``: ``EvaluationReport`` with ``to_dict()`` and rich tables.

Nothing is imported here, so ``import tunesmith.evaluation`` does not load torch.
"""
