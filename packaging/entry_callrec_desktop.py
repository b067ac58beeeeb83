"""PyInstaller entry script of the windowed ``callrec-desktop`` (see build.spec)."""

from callrec_desktop.app import main

raise SystemExit(main())
