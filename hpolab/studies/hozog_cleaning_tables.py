"""Study 05's tables: its setting next to the paper's (:func:`settings_table`), the cost per step
and per run (:func:`costs`) and the gamma pilot runs (:func:`pilot_table`). Apart from the run
(:mod:`hpolab.studies.hozog_cleaning`) because they only read the scale's constants or a
finished result.
"""

from __future__ import annotations

import pandas as pd

from hpolab.studies.common import StudyResult, check_scale
from hpolab.studies.hozog import seconds_per_step
from hpolab.studies.hozog_cleaning_setting import (
    CLEANING_BOX, CLEANING_LR, CLEANING_MU, CLEANING_Q, CLEANING_SIZES, GAMMA_GRID, PILOT_STEPS, SMOKE_STEPS,
)


def settings_table(scale: str) -> pd.DataFrame:
    """The setting a run at ``scale`` uses next to the paper's, one row per setting."""
    mine, paper = CLEANING_SIZES[check_scale(scale)], CLEANING_SIZES["paper"]

    def sizes(entries):
        return "; ".join(f"({s.n_train}, {s.n_val}, {s.n_test}, {s.groups})" for s in entries)

    rows = [("(Ntr, Nval, Ntest, Nh)", sizes(paper), sizes(mine)),
            ("inner solver", "gradient descent, step 0.05, 4000 steps",
             f"full-batch gradient descent, step {CLEANING_LR}, {mine[0].horizon} steps"),
            ("corrupted labels", "0.5 Ntr random labels", "0.5 Ntr random labels (uniform over 10 classes)"),
            ("groups", "Nh groups drawn at random", "random partition into Nh groups of equal size"),
            ("example weight", "sigmoid(lambda_g)", "sigmoid(lambda_g), lambda starts at 0"),
            ("HOZOG q, mu", "5, 1 (Table 2; mu from a garbled cell)", f"{CLEANING_Q}, {CLEANING_MU:g} (directions on the unit sphere)"),
            ("HOZOG and REV gamma", "illegible in our copy of Table 2",
             f"picked per method by a pilot over {[float(g) for g in GAMMA_GRID]}, {PILOT_STEPS[scale]} steps each"),
            ("box of lambda_g", "none (lambda in R^Nh)", f"none for HOZOG and REV; {list(CLEANING_BOX)} for RS and BOHB"),
            ("budget per method and size", "not stated (Figure 3's time axis)",
             "; ".join(f"{s.seconds:g} s" if s.seconds else f"{SMOKE_STEPS} HOZOG steps' training steps" for s in mine))]
    return pd.DataFrame(rows, columns=["setting", "paper", f"this run ({scale})"])


def costs(result: StudyResult) -> pd.DataFrame:
    """Wall time per outer step (a hypergradient, or a black-box trial) and per run, by size and
    method: the paper's 40 s (REV) against 24 s (HOZOG) at 1250 hyperparameters."""
    return pd.DataFrame([{"size": h.problem, "method": h.label, "steps": len(h.frame) - 1,
                          "seconds": float(h.frame["wall_time"].iloc[-1]), "s per step": seconds_per_step(h)}
                         for h in result.histories])


def pilot_table(result: StudyResult) -> pd.DataFrame:
    """The gamma pilot runs of a study result (empty when gamma was given); their wall times are
    in ``result.parameters["gamma_pilot"]``."""
    columns = ["size", "method", "gamma", "steps", "start val loss", "best val loss", "chosen"]
    return pd.DataFrame(result.parameters.get("gamma_pilot", []), columns=columns)
