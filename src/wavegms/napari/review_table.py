"""The review dock's table: the rows of ``results.csv`` (read in a worker) rendered as a
sortable, read-only QTableWidget, most uncertain first."""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

COLUMNS = (  # header, results.csv column, decimals
    ("name", "name", None),
    ("status", "status", None),
    ("mask area", "mask_area", 0),
    ("uncertainty", "uncertainty", 4),
    ("DSC %", "dsc_native", 2),
    ("IoU %", "iou_native", 2),
    ("HD95 px", "hd95_native", 2),
)


def _cell(value, decimals: int | None) -> QTableWidgetItem:
    """A read-only cell; numbers are kept as numbers, so sorting by them is numeric."""
    item = QTableWidgetItem()
    if decimals is None:
        item.setText(str(value))
    else:
        item.setData(Qt.ItemDataRole.DisplayRole, round(float(value), decimals))
    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
    return item


def review_table() -> QTableWidget:
    table = QTableWidget(0, len(COLUMNS))
    table.setHorizontalHeaderLabels([c[0] for c in COLUMNS])
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setSortingEnabled(True)
    table.setMinimumHeight(120)
    # The names stretch to the dock's width and are never cut to "sca…" (issue 25).
    table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
    return table


def fill_table(table: QTableWidget, rows: list[dict], status: dict[str, str]) -> None:
    """Show ``rows`` (with each name's review status), most uncertain first."""
    columns = [c for c in COLUMNS if c[1] in ("name", "status") or (rows and c[1] in rows[0])]
    table.setUpdatesEnabled(False)
    table.setSortingEnabled(False)
    table.clear()
    table.setColumnCount(len(columns))
    table.setHorizontalHeaderLabels([c[0] for c in columns])
    table.setRowCount(len(rows))
    for r, row in enumerate(rows):
        row = {**row, "status": status.get(row["name"], "")}
        for c, (_, key, decimals) in enumerate(columns):
            table.setItem(r, c, _cell(row[key], decimals))
    header = table.horizontalHeader()
    for c in range(1, len(columns)):
        header.setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)
    table.setSortingEnabled(True)
    uncertainty = [c[1] for c in columns].index("uncertainty")
    table.sortItems(uncertainty, Qt.SortOrder.DescendingOrder)
    table.setUpdatesEnabled(True)


def table_names(table: QTableWidget) -> list[str]:
    """The names in the table's current order."""
    return [table.item(r, 0).text() for r in range(table.rowCount())]
