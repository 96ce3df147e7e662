"""The fine-tune dock's training set: the Qt-free code lives in
:mod:`wavegms.training.training_set` (the review loop adds pairs to it too); this name is kept
for the dock and for existing imports."""

from wavegms.training.training_set import (
    MANIFEST,
    Entry,
    TrainingSet,
    foreground,
    projects_dir,
    safe_name,
)

__all__ = ["MANIFEST", "Entry", "TrainingSet", "foreground", "projects_dir", "safe_name"]
