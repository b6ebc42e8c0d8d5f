"""Training utilities shared by the families: optimizers and schedules, run logging."""
