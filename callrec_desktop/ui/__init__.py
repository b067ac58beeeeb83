"""The Qt user interface: the call handler's window (``main_window``), its widgets, the settings
dialog, the tray icon and help, and the adapter through which the Qt-free core reaches the GUI
thread. Nothing outside ``ui/`` and ``app.py`` imports Qt (an import-linter contract)."""
