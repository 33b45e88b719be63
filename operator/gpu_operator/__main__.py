from gpu_operator.cli import main

raise SystemExit(main())
