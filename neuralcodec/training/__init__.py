"""How the weights are made: training loop, losses, data preparation and export (not imported by the codec)."""
