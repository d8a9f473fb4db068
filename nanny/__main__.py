from nanny.cli import main

raise SystemExit(main())
