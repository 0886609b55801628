from heavytail.cli import main

raise SystemExit(main())
