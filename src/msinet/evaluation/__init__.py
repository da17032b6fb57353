"""Benchmark-grade scoring: saliency metrics, baselines, the evaluation report and the
density calibration."""
