"""Analysis tools of the ES-vs-SGD and ES-vs-finite-differences papers.

* gradient correlation: :func:`gradient_correlation`, :func:`es_gradient`,
  :func:`expected_cosine`, :func:`cosine`; the SGD proxy :func:`degrade_gradient`,
  :func:`sgd_proxy` (Zhang, Clune & Stanley 2017, arXiv:1712.06564);
* :func:`robustness`: returns under parameter noise; :func:`fd_ascent` / :func:`es_ascent` on
  low-dimensional landscapes (``el.tasks.landscapes``) (Lehman et al. 2017, arXiv:1712.06568).
"""

from evojax_lab.analysis.ascent import es_ascent, fd_ascent, finite_difference_gradient
from evojax_lab.analysis.gradients import (
    GradientCorrelation,
    GradientState,
    GradientTrainer,
    cosine,
    degrade_gradient,
    es_gradient,
    expected_cosine,
    gradient_correlation,
    sgd_proxy,
)
from evojax_lab.analysis.robustness import robustness

__all__ = [
    "GradientCorrelation",
    "GradientState",
    "GradientTrainer",
    "cosine",
    "degrade_gradient",
    "es_ascent",
    "es_gradient",
    "expected_cosine",
    "fd_ascent",
    "finite_difference_gradient",
    "gradient_correlation",
    "robustness",
    "sgd_proxy",
]
