"""deltaface synthesis: the face code space, inversion, deltas, schedules and warp fields."""
