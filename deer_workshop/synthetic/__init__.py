"""The synthetic trail-camera world: images with known boxes and identities, and detector training.

Only numpy and Pillow are needed to generate data (no Dagster, no SQL); ultralytics is imported
only by the training and evaluation modules, lazily.
"""

from deer_workshop.synthetic.dataset import GROUND_TRUTH, generate_dataset

__all__ = ["GROUND_TRUTH", "generate_dataset"]
