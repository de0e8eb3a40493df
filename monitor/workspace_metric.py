"""The one Evidently metric the drift history needs: a value the monitor already computed.

Evidently's dashboards plot metric results stored in snapshots. A window's verdict (p-values,
persona mix, status) is computed by the monitor, not by Evidently, so :class:`WindowValue` hands
one precomputed number to Evidently as a metric result: it reads column ``field`` of a one-row
table. The value lives in the data, not in the metric's parameters, because the UI keys a series
by the parameters: a value among them would make every window its own series.

This module imports Evidently at import time (≈5 s); only monitor/workspace.py imports it, lazily.
The ``evidently ui`` process does not need it: a snapshot stores its results and widgets.
"""

from __future__ import annotations

from typing import Any

from evidently.core.metric_types import SingleValueCalculation, SingleValueMetric

__all__ = ["WindowValue"]


class WindowValue(SingleValueMetric):  # type: ignore[misc]
    """One number of a window's verdict; ``field`` names it (``p:distance_shift``, ``mix:…``)."""

    field: str
    title: str = ""
    note: bool = False  # show ``title`` as a markdown text (the window's summary), not a number

    def _default_tests(self, context: Any) -> list[Any]:
        return []

    def _default_tests_with_reference(self, context: Any) -> list[Any]:
        return []


class WindowValueCalculation(SingleValueCalculation[WindowValue]):  # type: ignore[misc]
    def calculate(self, context: Any, current_data: Any, reference_data: Any) -> Any:
        value = float(current_data.as_dataframe()[self.metric.field].iloc[0])
        result = self.result(value)
        if self.metric.note:
            from evidently.legacy.renderers.html_widgets import text_widget

            result.widget = [text_widget(text=self.metric.title, title="Window")]
        return result, None

    def display_name(self) -> str:
        return str(self.metric.title or self.metric.field)
