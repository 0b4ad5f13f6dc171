"""Official checkpoint layouts -> ours: one pure-function module per family, plus shared helpers in common."""
