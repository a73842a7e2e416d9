"""Loggers and callbacks for training frameworks, each in its own module.

``stemma.integrations.lightning`` (PyTorch Lightning), ``.huggingface`` (``transformers``)
and ``.keras`` (Keras 3). Nothing here is imported by ``import stemma``: each module
imports its framework only when it is itself imported, so Stemma does not depend on
any of them.
"""
