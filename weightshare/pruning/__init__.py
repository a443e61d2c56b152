"""Pruning: magnitude masks (Han et al. 2015), FPGM filter pruning (He et al. 2019), retraining
with frozen masks. Masks are boolean tensors kept apart from the parameters (name -> mask,
``True`` = kept); they are never saved as parameters. Imports torch lazily in each module.
"""
