from pyfalloc.cli.main import main

raise SystemExit(main())
