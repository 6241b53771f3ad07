"""A learned linear projection on the frozen re-ID backbone (issue 12, item 5, the CPU route).

``worlds`` generates synthetic worlds and caches their backbone vectors, ``train`` fits the
projection (batch-hard triplets whose positives span day and night), ``evaluate`` judges it on
held-out worlds with a threshold calibrated on other worlds. Run ``python -m
deer_workshop.reid_projection --help``.
"""
