"""The library's table: a lazily fetched ``QAbstractTableModel`` over the catalogue.

Rows arrive a page (``PAGE`` = 200) at a time: the view asks ``canFetchMore``/``fetchMore`` as
it scrolls, so a million catalogued calls cost one page of memory until someone scrolls. Every
catalogue query (rows and the total count) runs on a worker through ``DeskAdapter.run_task``,
never on the GUI thread; results come back on the GUI thread and are dropped if the filter or
the sort changed meanwhile (a generation number). Sorting uses the catalogue's whitelisted
``order_by`` names; a column the catalogue cannot sort by keeps the current order.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, Qt, Signal

from callrec_desktop.catalog import Catalog, CatalogFilter, CallRow
from callrec_desktop.ui.adapter import DeskAdapter, TaskResult, emit_signal
from callrec_desktop.ui.widgets import format_duration

PAGE = 200

END_WORDS = {"hangup": "Hung up", "transferred": "Transferred", "interrupted": "Interrupted", "error": "Error",
             "shutdown": "Program closed", "disk_full": "Disk full"}


@dataclass(frozen=True)
class Column:
    title: str
    order_by: str | None  # the catalogue's name, None: not sortable


COLUMNS = (
    Column("Started", "started_at"),
    Column("Line", "line_number"),
    Column("Department", "department"),
    Column("Agent", "agent"),
    Column("Caller", "caller"),
    Column("Duration", "duration_seconds"),
    Column("End", "end_reason"),
    Column("Pauses", None),
)


@dataclass(frozen=True)
class PageJob:
    """One page to read (immutable: handed to a worker as it is)."""

    generation: int
    filter: CatalogFilter
    order_by: str
    descending: bool
    after: str | None  # the call id of the last row already shown (keyset paging); None: the first page
    limit: int
    with_count: bool


def run_page(catalog: Catalog, job: PageJob) -> tuple[list[CallRow], int | None]:
    """Runs on a worker thread: the page's rows (and the total when asked). The worker's own
    SQLite connection is closed before the thread ends."""
    try:
        rows = catalog.query(job.filter, order_by=job.order_by, descending=job.descending,
                             limit=job.limit, after=job.after)
        total = catalog.count(job.filter) if job.with_count else None
        return rows, total
    finally:
        catalog.close()


def cell_text(row: CallRow, column: int) -> str:
    if column == 0:
        return row.started_at.astimezone().strftime("%d %b %Y %H:%M")
    if column == 1:
        return row.line_number
    if column == 2:
        return row.department
    if column == 3:
        return row.agent
    if column == 4:
        return row.caller or "withheld"
    if column == 5:
        return format_duration(row.duration_seconds)
    if column == 6:
        if row.status == "recording":
            return "Still recording"
        text = END_WORDS.get(row.end_reason or "", row.end_reason or "")
        return f"{text} to {row.transferred_to}" if row.transferred_to else text
    if column == 7:
        if not row.pause_count:
            return ""
        pay = row.payment_pause_count
        return f"{row.pause_count} ({pay} payment)" if pay else str(row.pause_count)
    return ""


class LibraryModel(QAbstractTableModel):
    """Calls matching ``filter`` in the chosen order. ``page_loaded(total)`` after each page."""

    page_loaded = Signal(int)  # the total count for the current filter
    load_failed = Signal(str)

    def __init__(self, catalog: Catalog, adapter: DeskAdapter, parent: QObject | None = None, *,
                 page_size: int = PAGE) -> None:
        super().__init__(parent)
        self._catalog = catalog
        self._adapter = adapter
        self._page = page_size
        self.page_size = page_size
        self._rows: list[CallRow] = []
        self._filter = CatalogFilter()
        self._order_by = "started_at"
        self._descending = True
        self._generation = 0
        self._fetching = False
        self._more = False
        self.total: int | None = None

    # ---- Qt's model API --------------------------------------------------------------------------
    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802 - Qt's name
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802 - Qt's name
        return 0 if parent.isValid() else len(COLUMNS)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        row = self._rows[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.AccessibleTextRole):
            return cell_text(row, index.column())
        if role == Qt.ItemDataRole.UserRole:
            return row.call_id
        if role == Qt.ItemDataRole.TextAlignmentRole and index.column() == 5:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802 - Qt's name
                   role: int = Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole \
                and 0 <= section < len(COLUMNS):
            return COLUMNS[section].title
        return None

    def canFetchMore(self, parent: QModelIndex = QModelIndex()) -> bool:  # noqa: N802 - Qt's name
        return not parent.isValid() and self._more and not self._fetching

    def fetchMore(self, parent: QModelIndex = QModelIndex()) -> None:  # noqa: N802 - Qt's name
        if parent.isValid() or self._fetching or not self._more:
            return
        self._start(with_count=False)

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        if not 0 <= column < len(COLUMNS) or COLUMNS[column].order_by is None:
            return  # the catalogue cannot sort by it: keep the current order
        self._order_by = COLUMNS[column].order_by
        self._descending = order == Qt.SortOrder.DescendingOrder
        self.reload()

    # ---- ours ------------------------------------------------------------------------------------
    @property
    def filter(self) -> CatalogFilter:
        return self._filter

    @property
    def order(self) -> tuple[str, bool]:
        return self._order_by, self._descending

    @property
    def loading(self) -> bool:
        return self._fetching

    def row_at(self, row: int) -> CallRow | None:
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def call_ids(self) -> list[str]:
        return [r.call_id for r in self._rows]

    def set_filter(self, flt: CatalogFilter) -> None:
        self._filter = flt
        self.reload()

    def reload(self) -> None:
        """Forget the rows and read the first page again (after a sync, filter or sort change)."""
        self._generation += 1
        self.beginResetModel()
        self._rows = []
        self.total = None
        self._more = False
        self._fetching = False
        self.endResetModel()
        self._start(with_count=True)

    def _start(self, *, with_count: bool) -> None:
        self._fetching = True
        job = PageJob(self._generation, self._filter, self._order_by, self._descending,
                      self._rows[-1].call_id if self._rows else None, self._page, with_count)
        catalog = self._catalog
        self._adapter.run_task(lambda: run_page(catalog, job), lambda r: self._on_page_done(job, r),
                               name="library-page")

    def _on_page_done(self, job: PageJob, result: TaskResult) -> None:
        if job.generation != self._generation:
            return  # a newer filter or sort replaced this one
        self._fetching = False
        if not result.ok:
            self._more = False
            emit_signal(self.load_failed, str(result.error))
            return
        rows, total = result.value
        if total is not None:
            self.total = total
        if rows:
            self.beginInsertRows(QModelIndex(), len(self._rows), len(self._rows) + len(rows) - 1)
            self._rows.extend(rows)
            self.endInsertRows()
        self._more = len(rows) == job.limit
        emit_signal(self.page_loaded, self.total if self.total is not None else len(self._rows))
