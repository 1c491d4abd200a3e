"""The lessons, as data: each classic finding's question, experiment, measurement and judge.

Every judge reads only the numbers measured from the learner's own runs and returns the choice those
numbers support, with a sentence written from them; thresholds are stated in the choices, so a
learner can check the judge. Experiments are sized to at most about 90 s of training on 2 cores
(benchmarks/lessons.py prints each one's time).

One module per lesson beside this index (line.py, overfit.py, ...); the order here is the course's."""

from __future__ import annotations

from .attempts import Lesson
from .augment import AUGMENT
from .confusion import CONFUSION
from .conv import CONV
from .depth import DEPTH
from .line import LINE
from .lr import LR
from .overfit import OVERFIT
from .preprocess import PREPROCESS

LESSONS: tuple[Lesson, ...] = (LINE, OVERFIT, CONV, DEPTH, AUGMENT, LR, PREPROCESS, CONFUSION)


BY_KEY = {lesson.key: lesson for lesson in LESSONS}
