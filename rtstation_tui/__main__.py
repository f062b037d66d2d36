from rtstation_tui.cli import main

raise SystemExit(main())
