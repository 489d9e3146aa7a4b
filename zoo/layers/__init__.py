"""Shared long-sequence layers: FFT convolution, scans, SSMs, Hyena, Mamba, xLSTM, attention, heads."""
