"""NeurIPS Fig 6: GD, Adam and sign descent on the weighted quadratic Σ_k π_k w_k² with π_k ∝ 1/k.

    heavytail reproduce weighted-quadratic        # < 1 s; both scales are the figure itself

Exactly the authors' script (paper.md §6.4): c = 1 000, w(0) = 1, 50 iterations, gradient π ∘ w fed
to each method (decisions D18), GD step 0.5/π_1, sign descent 0.70, Adam (0.9, 0.999) 0.70 — step
sizes fixed by the figure, no grid search. Expected: GD's least frequent group stays above 0.9 while
its most frequent reaches 0; sign descent holds every group at 0.09-0.16; Adam brings every group to
about 0.003.
"""

from heavytail.presets.base import Study
from heavytail.theory.studies import weighted_quadratic_study

PRESET = Study(
    name="weighted-quadratic",
    title="Weighted quadratic: GD fits heavy coordinates only, Adam and sign descent fit all",
    v1_figure="-",
    neurips_figure="Fig 6",
    aliases=("neurips-fig6",),
    scales={"small": {}, "paper": {}},
    compute=weighted_quadratic_study,
    minutes={"small": (0.1, 0.1), "paper": (0.1, 0.1)},
    notes=__doc__ or "",
)
