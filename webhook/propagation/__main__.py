"""Run `python -m webhook.propagation propagate ...`, the controller alone.

Same as `runai-secrets-webhook propagate`; useful where only this package's
command is wanted.
"""

import sys

from webhook.propagation.command import main

sys.exit(main())
