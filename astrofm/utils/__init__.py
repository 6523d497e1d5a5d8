"""Small helpers shared across astrofm."""
