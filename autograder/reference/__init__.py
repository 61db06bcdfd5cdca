"""Hidden reference solutions: every graded function, same name and signature as the notebooks.

One module per assignment: :mod:`.standardization` (01), :mod:`.batchnorm` (02 and 03, with
:mod:`.backward_stages` for 03's staged derivation), :mod:`.experiments` (04), :mod:`.beyond`
(05); this facade keeps ``from autograder.reference import batchnorm_forward`` working. Only the trusted side imports it: it is never mounted into
the sandbox.

BatchNorm follows PyTorch's ``torch.nn.BatchNorm1d`` / ``BatchNorm2d`` semantics exactly
(https://pytorch.org/docs/stable/generated/torch.nn.BatchNorm1d.html): normalize with the biased
batch variance, update ``running_var`` with the unbiased one, and
``running = (1 - momentum) * running + momentum * batch_stat``. The transform itself is
Algorithm 1 of Ioffe & Szegedy (2015), arXiv:1502.03167.
"""

from __future__ import annotations

from autograder.reference.backward_stages import (
    batch_stats_backward,
    dx_through_mean,
    dx_through_var,
    normalize_backward,
    scale_shift_backward,
)
from autograder.reference.batchnorm import (
    batch_stats,
    batchnorm_backward,
    batchnorm_backward_alt,
    batchnorm_forward,
    fixed_backward_dvar,
    fixed_backward_inv_n,
    normalize,
    numerical_gradient,
    scale_shift,
    spatial_batchnorm_backward,
    spatial_batchnorm_forward,
)
from autograder.reference.beyond import (
    batchrenorm_backward,
    batchrenorm_forward,
    layernorm_backward,
    layernorm_forward,
    spatial_groupnorm_backward,
    spatial_groupnorm_forward,
)
from autograder.reference.experiments import (
    affine_bn_relu_backward,
    affine_bn_relu_forward,
    mode_accuracies,
)
from autograder.reference.standardization import (
    fit_standardizer,
    is_constant_feature,
    standardize,
)

__all__ = [
    "fit_standardizer",
    "standardize",
    "is_constant_feature",
    "batch_stats",
    "normalize",
    "scale_shift",
    "batchnorm_forward",
    "spatial_batchnorm_forward",
    "numerical_gradient",
    "scale_shift_backward",
    "normalize_backward",
    "batch_stats_backward",
    "batchnorm_backward",
    "dx_through_var",
    "dx_through_mean",
    "batchnorm_backward_alt",
    "spatial_batchnorm_backward",
    "fixed_backward_inv_n",
    "fixed_backward_dvar",
    "affine_bn_relu_forward",
    "affine_bn_relu_backward",
    "mode_accuracies",
    "layernorm_forward",
    "layernorm_backward",
    "spatial_groupnorm_forward",
    "spatial_groupnorm_backward",
    "batchrenorm_forward",
    "batchrenorm_backward",
]
