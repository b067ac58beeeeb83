"""PyInstaller entry script of the console ``callrec`` (see build.spec)."""

from callrec_desktop.cli import main

raise SystemExit(main())
