"""Framework-free core of the exploration (numpy, optuna, ray; never torch, tf or onnxruntime)."""
