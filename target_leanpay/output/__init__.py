"""What a run writes: STATE lines, checkpoints, dead letters, the plan and the summary."""
