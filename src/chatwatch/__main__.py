from chatwatch.cli import main

raise SystemExit(main())
