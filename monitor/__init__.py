"""The drift monitor: event-time windows over persona-labels, calibrated drift tests in the
persona frame, Evidently reports, drift alerts and retrain commands (docs/monitor.md).

Entry points: ``persona monitor`` / ``monitor.service.run`` and ``persona alerts``.
"""
