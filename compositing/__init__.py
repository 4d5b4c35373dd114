"""deltaface compositing: aligned crops, warp-back, masks and blending."""
