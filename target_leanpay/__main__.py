"""`python -m target_leanpay` runs the target's CLI."""

from target_leanpay.target import TargetLeanpay

TargetLeanpay.cli()
