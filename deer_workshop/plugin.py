"""The workshop as a plugin of the runtime (entry point ``deer_pipeline.plugins: workshop``).

Offers the ``demo-data`` and ``train-detector`` commands and the synthetic dataset generator that
``deer-pipeline run`` (demo set) and the benchmark use, without the runtime importing the workshop
by name.
"""

from deer_workshop.synthetic import generate_dataset

COMMAND_MODULES = ("deer_workshop.synthetic.commands",)

__all__ = ["COMMAND_MODULES", "generate_dataset"]
