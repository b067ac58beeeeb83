from callrec_desktop.cli import main

raise SystemExit(main())
