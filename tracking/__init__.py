"""deltaface tracking: landmarker, observations, tracks, smoothing, and the shared records."""
