"""`python -m target_leanpay` runs the target's CLI, as the `target-leanpay` command does."""

from target_leanpay.cli import main

main()
