"""Persona Stream's shared domain library.

Pure core (importable in milliseconds, no faust/MLflow/Evidently): ``settings``, ``schemas``,
``catalogue``, ``model``, ``errors``. I/O helpers shared by the services live in their own modules
(``kafka``, ``db``, ``registry``) and import their heavy dependencies lazily.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
