"""`python -m webhook.cli`: the same as the `model-cache` command."""

import sys

from webhook.cli.main import main

sys.exit(main())
