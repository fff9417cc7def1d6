"""Measuring without training: reward-model accuracy and calibration, win rates, KL, the HTML report."""
