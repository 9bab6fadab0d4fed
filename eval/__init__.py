"""Rate-distortion evaluation suite for ncodec: anchors, metrics, BD-rates, plots (run as `python -m eval`)."""
