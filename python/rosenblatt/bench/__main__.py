"""``python -m rosenblatt.bench``."""

from rosenblatt.bench import main

raise SystemExit(main())
