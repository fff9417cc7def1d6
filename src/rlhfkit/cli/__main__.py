"""`python -m rlhfkit.cli VERB ...` (what `accelerate launch -m rlhfkit.cli` runs)."""
import sys

from rlhfkit.cli import main

sys.exit(main())
