"""Offline programs: models with bidirectional layers, run over whole sequences in stages."""
